"""Deals over time and across restarts: expiry GC on an injected clock, state that survives a
restart, and kill -9 in the middle of an upload (a real subprocess)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from nacl.signing import SigningKey

from gateway.keys import format_gateway_public, load_identity
from gateway.market.epoch import EPOCH_SECONDS, epoch_at
from gateway.market.messages import Voucher
from gateway.node import load_node_config, node_init_main, start_node
from gateway.testing.broker import free_port
from gateway.testing.node_client import FakeClock, SigningClient, make_node_config, make_proposal

ROOT = Path(__file__).resolve().parent.parent


async def _deal(client: SigningClient, provider: str, data: bytes, **changes: int) -> str:
    wire = make_proposal(client.key, provider, data, epoch_at(client.clock()), **changes)
    status, body, _ = await client.send("POST", "/market/v1/deals", json_body=wire)
    assert status == 200, body
    return str(body["body"]["upload_url"] or body["body"]["deal_id"])


async def test_expired_deals_are_collected_on_the_timer(tmp_path: Path) -> None:
    """Past end_epoch a deal expires; its piece goes once no live deal holds it; records stay."""
    clock = FakeClock()
    node = await start_node(make_node_config(tmp_path, gc_interval="0.05s"), clock)
    client = SigningClient(node.url, SigningKey.generate(), clock)
    try:
        shared, alone = os.urandom(1000), os.urandom(2000)
        epoch = clock.epoch
        for data, end in ((shared, 200), (shared, 400), (alone, 200)):
            wire = make_proposal(client.key, node.provider, data, epoch, end_epoch=epoch + end)
            _, body, _ = await client.send("POST", "/market/v1/deals", json_body=wire)
            if body["body"]["upload_url"]:
                assert (await client.send("PUT", body["body"]["upload_url"], data))[0] == 204
        assert node.service.deal_counts()["active"] == 3 and len(node.service.pieces) == 2

        clock.advance(250 * EPOCH_SECONDS)
        await _until(lambda: node.service.deal_counts()["removed"] == 2)
        assert len(node.service.pieces) == 1  # the shared piece is still held by a live deal
        assert not any(
            p.name.startswith("bafk") and p.stat().st_size == 2000
            for p in node.service.store.pieces_dir.iterdir()
        )

        clock.advance(200 * EPOCH_SECONDS)
        await _until(lambda: node.service.deal_counts()["removed"] == 3)
        assert node.service.pieces == {} and not list(node.service.store.pieces_dir.iterdir())
        snap = (await client.send("GET", "/status", sign=False))[1]
        assert snap["used"] == 0 and snap["deals"]["removed"] == 3
    finally:
        await client.close()
        await node.stop()


async def _until(condition: object, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_deals_pieces_and_vouchers_survive_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    config = make_node_config(tmp_path)
    key = SigningKey.generate()
    data = os.urandom(3000)
    node = await start_node(config, clock)
    client = SigningClient(node.url, key, clock)
    upload_url = await _deal(client, node.provider, data)
    pending_url = await _deal(client, node.provider, os.urandom(500))
    await client.send("PUT", upload_url, data)
    deal_id = next(iter(node.service.deals))
    voucher = Voucher(deal_id=deal_id, lane=0, nonce=1, amount=777).sign(key)
    assert (await client.send("POST", f"/market/v1/deals/{deal_id}/vouchers", json_body=voucher))[
        0
    ] == 200
    await client.close()
    await node.stop()
    before = {d: r.to_json() for d, r in node.service.deals.items()}

    node = await start_node(config, clock)
    client = SigningClient(node.url, key, clock)
    try:
        assert {d: r.to_json() for d, r in node.service.deals.items()} == before
        assert node.service.reserved_bytes == 512 and len(node.service.pieces) == 1
        assert node.service.earnings()["total"] == "777"
        status, body, _ = await client.send("GET", f"/piece/{next(iter(node.service.pieces))}")
        assert (status, body) == (200, data)
        assert pending_url.startswith("/pdp/piece/upload/")
    finally:
        await client.close()
        await node.stop()


async def test_kill_9_mid_upload_leaves_no_partial_piece_and_the_upload_can_be_retried(
    tmp_path: Path,
) -> None:
    config_path = tmp_path / "node.toml"
    port = free_port()
    assert node_init_main(config_path, tmp_path / "data", f"127.0.0.1:{port}") == 0
    config = load_node_config(config_path)
    provider = format_gateway_public(load_identity(config.identity).verify_key)
    url = f"http://127.0.0.1:{port}"
    data = os.urandom(3 << 20)
    client = SigningClient(url, SigningKey.generate(), time.time)
    process = await _spawn(config_path, url, tmp_path / "node.log")
    try:
        upload_url = await _deal(client, provider, data)
        sent_half = asyncio.Event()

        async def stalled_body() -> AsyncIterator[bytes]:
            yield data[: len(data) // 2]
            sent_half.set()
            await asyncio.sleep(60)
            yield data[len(data) // 2 :]

        headers = client.headers("PUT", upload_url, data)
        upload = asyncio.create_task(
            client.send("PUT", upload_url, sign=False, headers=headers, data=stalled_body())
        )
        await sent_half.wait()
        parts = config.data_dir / "tmp"
        await _until(lambda: any(p.stat().st_size > 0 for p in parts.iterdir()), 10)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        try:
            await upload
        except aiohttp.ClientError:
            pass
        else:
            raise AssertionError("the upload should have been cut off")

        process = await _spawn(config_path, url, tmp_path / "node.log")
        assert not list(parts.iterdir())
        cid = make_proposal(client.key, provider, data, 0)["body"]["piece_cid"]
        assert (await client.send("GET", f"/piece/{cid}", sign=False))[0] == 404
        assert (await client.send("GET", f"/pdp/piece/?pieceCid={cid}", sign=False))[0] == 404
        assert (await client.send("PUT", upload_url, data))[0] == 204
        status, body, _ = await client.send("GET", f"/piece/{cid}", sign=False)
        assert status == 200 and body == data
    finally:
        await client.close()
        process.terminate()
        assert process.wait(10) == 0


def _popen(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.node", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def _check_alive(process: subprocess.Popen[bytes], log: Path) -> None:
    assert process.poll() is None, log.read_text()


async def _spawn(config: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    """``python -m gateway.node run`` as a child we can kill -9; returns once it answers."""
    process = _popen(config, log)
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/pdp/ping") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            _check_alive(process, log)
            assert time.monotonic() < deadline, "node did not start"
            await asyncio.sleep(0.05)
