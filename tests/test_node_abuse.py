"""The storage node under abuse (issue 8, items 8-10), against real node processes on loopback:
capacity floods by throwaway keys, idle and slowloris connections under a low file limit, huge
Range numbers, replays across restarts, and malformed requests that must not flood the log."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nacl.signing import SigningKey

from gateway.keys import format_gateway_public
from gateway.market.epoch import epoch_at
from gateway.testing import node_client as node_testing
from gateway.testing.node_client import (
    NodeProcess,
    SigningClient,
    fake_piece,
    make_proposal,
    proposal_for,
)

MIB = 1 << 20


async def _until(condition: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"not reached within {within} s: {what}"
        await asyncio.sleep(0.05)


def _no_tracebacks(node: NodeProcess) -> None:
    log = node.log()
    assert "Traceback" not in log, log[-3000:]
    assert not re.search(r"^(ERROR|CRITICAL)", log, re.MULTILINE), log[-3000:]


@pytest.fixture
async def flood_node(tmp_path: Path) -> AsyncIterator[NodeProcess]:
    node = NodeProcess(
        tmp_path,
        capacity="1GiB",
        max_reserved_per_client="128MiB",
        max_reserved_per_address="256MiB",
        max_unpaid_reserved="512MiB",
        reservation_ttl="15s",
    )
    node.start()
    yield node
    assert node.stop() == 0
    _no_tracebacks(node)


async def _reserve(node: NodeProcess, key: SigningKey, address: str, size: int) -> tuple[int, str]:
    """Propose a deal for a piece of ``size`` padded bytes that will never be uploaded."""
    client = SigningClient(node.url, key, time.time, local_addr=address)
    try:
        wire = proposal_for(key, node.provider, fake_piece(size), epoch_at(time.time()))
        status, body, _ = await client.send("POST", "/market/v1/deals", json_body=wire)
        return status, body["body"]["reason"] if status == 422 else body["body"]["deal_id"]
    finally:
        await client.close()


async def _status(node: NodeProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(node.url + "/status") as response:
        assert response.status == 200
        data: dict[str, Any] = await response.json()
        return data


async def _real_deal(node: NodeProcess, address: str) -> str:
    """A real client: propose, upload at once; the deal's state afterwards."""
    key = SigningKey.generate()
    client = SigningClient(node.url, key, time.time, local_addr=address)
    try:
        data = os.urandom(3000)
        wire = make_proposal(key, node.provider, data, epoch_at(time.time()))
        status, body, _ = await client.send("POST", "/market/v1/deals", json_body=wire)
        assert status == 200, body
        assert (await client.send("PUT", body["body"]["upload_url"], data))[0] == 204
        deal_id = body["body"]["deal_id"]
        return str((await client.send("GET", f"/market/v1/deals/{deal_id}"))[1]["state"])
    finally:
        await client.close()


async def test_capacity_flood_by_throwaway_keys_is_capped_and_lapses(
    flood_node: NodeProcess,
) -> None:
    """Many keys cannot reserve the node: per-key, per-address and unpaid caps hold, a real
    deal from elsewhere still gets space, and unpaid reservations lapse after reservation_ttl."""
    node, size = flood_node, 64 * MIB
    key0 = SigningKey.generate()
    one_key = [await _reserve(node, key0, "127.0.0.1", size) for _ in range(3)]
    assert [s for s, _ in one_key] == [200, 200, 422]
    assert one_key[2][1].startswith("too_many_reserved:") and "per_client" in one_key[2][1]

    same_address = [
        await _reserve(node, SigningKey.generate(), "127.0.0.1", size) for _ in range(20)
    ]
    assert sum(s == 200 for s, _ in same_address) == 2  # 256 MiB per address in all
    assert all("per_address" in r for s, r in same_address if s == 422)
    assert await _real_deal(node, "127.0.0.2") == "active"

    many_addresses = [
        await _reserve(node, SigningKey.generate(), f"127.0.0.{3 + i // 3}", size)
        for i in range(30)
    ]
    assert sum(s == 200 for s, _ in many_addresses) == 4  # up to 512 MiB unpaid in all
    assert all(r.startswith("busy:") for s, r in many_addresses if s == 422)
    snap = await _status(node)
    assert snap["reserved"] == 512 * MIB and snap["free"] >= 1024 * MIB - 512 * MIB - 4096

    async def lapsed() -> bool:
        return (await _status(node))["reserved"] == 0

    await _until(lapsed, 30, "unpaid reservations lapse")
    assert await _real_deal(node, "127.0.0.3") == "active"  # the flood's address may deal again
    flooded = next(r for s, r in many_addresses if s == 200)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{node.url}/market/v1/deals/{flooded}") as response:
            deal = await response.json()
    assert deal["state"] == "failed" and deal["reason"].startswith("reservation lapsed")
    assert "client_address" not in deal


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _idle_sockets(url: str, count: int) -> list[Connection]:
    host, port = url.removeprefix("http://").split(":")
    connections = []
    for i in range(count):
        reader, writer = await asyncio.open_connection(host, int(port))
        if i % 5 == 0:  # slowloris: a request head that never ends
            writer.write(b"GET /pdp/ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        connections.append((reader, writer))
    return connections


async def _closed_by_peer(reader: asyncio.StreamReader) -> None:
    """Returns once the node closed the connection (EOF or reset); it never sends data here."""
    try:
        while await reader.read(4096):
            pass
    except ConnectionError:
        pass


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_idle_connections_under_a_low_file_limit_do_not_lock_out_clients(
    tmp_path: Path,
) -> None:
    """Under prlimit --nofile=256, 400 idle or slowloris sockets: real clients are still
    served, the node stays under its file limit, closes the idle ones, and logs little."""
    node = NodeProcess(tmp_path, ["prlimit", "--nofile=256:256", "--"], header_timeout="3s")
    node.start()
    try:
        cpu_before, wall_before = _cpu_seconds(node.pid), time.monotonic()
        idle = await _idle_sockets(node.url, 400)
        assert len(os.listdir(f"/proc/{node.pid}/fd")) < 256
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for _ in range(20):
                async with session.get(node.url + "/pdp/ping") as response:
                    assert response.status == 200
        # the node closes every one of them: evicted at the cap, or after header_timeout
        await asyncio.wait_for(asyncio.gather(*(_closed_by_peer(r) for r, _ in idle)), 20)
        for _, writer in idle:
            writer.close()
        cpu = _cpu_seconds(node.pid) - cpu_before
        assert cpu < 0.5 * (time.monotonic() - wall_before) + 1.0, cpu
        assert len(os.listdir(f"/proc/{node.pid}/fd")) < 100
        assert node.log_path.stat().st_size < 20_000, node.log()[-2000:]
        assert "lowered to 160" in node.log()
    finally:
        assert node.stop() == 0
    _no_tracebacks(node)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[NodeProcess]:
    running = NodeProcess(tmp_path)
    running.start()
    yield running
    assert running.stop() == 0
    _no_tracebacks(running)


async def _held_piece(client: SigningClient, provider: str, data: bytes) -> str:
    wire = make_proposal(client.key, provider, data, epoch_at(time.time()))
    status, body, _ = await client.send("POST", "/market/v1/deals", json_body=wire)
    assert status == 200, body
    assert (await client.send("PUT", body["body"]["upload_url"], data))[0] == 204
    return str(body["body"]["piece_cid"])


async def test_range_and_signature_numbers_of_5000_digits_are_4xx_not_500(
    node: NodeProcess,
) -> None:
    client = SigningClient(node.url, SigningKey.generate(), time.time)
    try:
        cid = await _held_piece(client, node.provider, os.urandom(1000))
        huge = "9" * 5000
        expected = {
            f"bytes=0-{huge}": 206,  # past the end: up to the last byte
            f"bytes={huge}-": 416,
            f"bytes={huge}-{huge}": 400,  # a header over aiohttp's 8190 bytes
            f"bytes={huge[:4000]}-{huge[:4000]}": 416,
            f"bytes=-{huge}": 206,  # a suffix longer than the piece: all of it
            f"bytes={'0' * 5000}1-2": 206,
            f"bytes=0-{'0' * 5000}": 206,
            f"bytes=-{'0' * 5000}": 416,
        }
        for header, status in expected.items():
            got, body, headers = await client.send(
                "GET", f"/piece/{cid}", sign=False, headers={"Range": header}
            )
            assert got == status, (header[:20], got)
            if got == 416:
                assert headers["Content-Range"] == "bytes */1000"
        signed = client.headers("POST", "/market/v1/deals", b"{}")
        signed["Signature-Input"] = re.sub(
            r"created=\d+", f"created={huge}", signed["Signature-Input"]
        )
        got, body, _ = await client.send(
            "POST", "/market/v1/deals", b"{}", sign=False, headers=signed
        )
        assert got == 401 and body["code"] == "bad_signature"
    finally:
        await client.close()


async def test_a_signed_request_is_refused_again_after_a_restart_or_kill_9(
    node: NodeProcess,
) -> None:
    """The replay cache is on disk (append-only segments): neither a clean restart nor kill -9
    lets a captured request in again, and recording a nonce appends to the file, not rewrites."""
    client = SigningClient(node.url, SigningKey.generate(), time.time)
    try:
        wire = make_proposal(client.key, node.provider, os.urandom(500), epoch_at(time.time()))
        body = json.dumps(wire).encode()
        # a fresh connection each time: the pooled one dies with the node
        headers = {**client.headers("POST", "/market/v1/deals", body), "Connection": "close"}

        async def send() -> tuple[int, Any, dict[str, str]]:
            return await client.send("POST", "/market/v1/deals", body, sign=False, headers=headers)

        assert (await send())[0] == 200
        assert (await send())[1]["code"] == "replayed"
        for restart in (node.stop, node.kill):
            restart()
            node.start()
            status, answer, _ = await send()
            assert (status, answer["code"]) == (401, "replayed")
        header, segments = node_testing.REPLAY_HEADER, node_testing.replay_segments
        before = segments(node.config.data_dir)
        assert before and all(data.startswith(header) for data, _ in before.values())
        assert (await client.send("POST", "/pdp/piece", json_body={"pieceCid": "x"}))[0] == 400
        appended = b""
        for path, (data, inode) in segments(node.config.data_dir).items():
            if path in before:
                old, old_inode = before[path]
                assert inode == old_inode and data.startswith(old), "rewritten, not appended"
                appended += data[len(old) :]
            else:  # a new segment starts every 2 * max_skew; the test may straddle one
                assert data.startswith(header)
                appended += data[len(header) :]
        keyid = format_gateway_public(client.key.verify_key)
        assert re.fullmatch(rf"\d+ {keyid} [0-9a-f]{{24}}\n", appended.decode())
    finally:
        await client.close()


MALFORMED = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),  # TLS to an HTTP port
    b"GET /pdp/ping HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /pdp/ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 10_000 + b"\r\n\r\n",
    b"POST /market/v1/deals HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n\r\n",
    b"POST /market/v1/deals HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /market/v1/deals HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    b"GET /pdp/ping HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /piece/%ED%A0%80 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /pdp/piece/?pieceCid=%00%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /market/v1/prove HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n[[[[[",
    b'POST /market/v1/prove HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{"pieceCid":1}',
    b"\x00" * 200 + b"\r\n\r\n",
]


async def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(200), 10)
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def test_malformed_requests_are_4xx_and_one_rate_limited_warning_line_each(
    node: NodeProcess,
) -> None:
    """Hundreds of malformed requests: every answer is 4xx (or a closed connection), the log
    has no ERROR and no traceback, and its WARNING lines stay within the rate limit, saying how
    many were suppressed."""
    started, sent = time.monotonic(), 0
    while sent < 300 or "suppressed" not in node.log():
        assert time.monotonic() - started < 30, "no line ever reported suppressed ones"
        answers = await asyncio.gather(*(_raw(node.url, request) for request in MALFORMED))
        for request, answer in zip(MALFORMED, answers, strict=True):
            assert answer == b"" or re.match(rb"HTTP/1\.[01] 4\d\d ", answer), (request, answer)
        sent += len(MALFORMED)
    elapsed = time.monotonic() - started
    assert (await _raw(node.url, b"GET /pdp/ping HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(
        b"HTTP/1.1 200"
    )
    warnings = [line for line in node.log().splitlines() if line.startswith("WARNING")]
    assert len(warnings) <= 20 + 2 * elapsed + 2 < sent, (len(warnings), sent)
    assert node.log_path.stat().st_size < 20_000
    _no_tracebacks(node)


async def test_stalled_and_trickled_bodies_get_408_within_body_timeout(tmp_path: Path) -> None:
    """A JSON body that stops, and an upload that trickles one byte at a time, are cut off."""
    node = NodeProcess(tmp_path, body_timeout="1s")
    node.start()
    client = SigningClient(node.url, SigningKey.generate(), time.time)
    try:
        data = os.urandom(3000)
        wire = make_proposal(client.key, node.provider, data, epoch_at(time.time()))
        body = (await client.send("POST", "/market/v1/deals", json_body=wire))[1]["body"]
        url = body["upload_url"]
        host, port = node.url.removeprefix("http://").split(":")
        for path, headers, method in (
            ("/market/v1/prove", {}, "POST"),
            (url, client.headers("PUT", url, data), "PUT"),
        ):
            reader, writer = await asyncio.open_connection(host, int(port))
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{head}".encode())
            writer.write(f"Content-Length: {len(data)}\r\n\r\n".encode())
            answer = asyncio.ensure_future(reader.read(100))
            for byte in data:
                if answer.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.wait([answer], timeout=0.2)
            assert (await asyncio.wait_for(answer, 10)).startswith(b"HTTP/1.1 408"), path
            writer.close()
    finally:
        await client.close()
        assert node.stop() == 0
    _no_tracebacks(node)


async def test_a_client_that_does_not_read_its_download_is_dropped(tmp_path: Path) -> None:
    """A slow reader would hold a busy, never-evicted connection: after body_timeout without
    taking a chunk it is dropped (counted in status) and the piece is cut short."""
    node = NodeProcess(tmp_path, body_timeout="1s", max_piece_size="16MiB")
    node.start()
    client = SigningClient(node.url, SigningKey.generate(), time.time)
    try:
        data = os.urandom(12 * MIB)  # more than the loopback socket buffers hold
        cid = await _held_piece(client, node.provider, data)
        host, port = node.url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(f"GET /piece/{cid} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

        async def dropped() -> bool:
            return bool((await _status(node))["connections"]["slow_readers"] >= 1)

        await _until(dropped, 20, "the node drops the reader")
        received = 0
        try:
            while chunk := await asyncio.wait_for(reader.read(1 << 16), 10):
                received += len(chunk)
        except ConnectionError:
            pass
        assert received < len(data)
        writer.close()
    finally:
        await client.close()
        assert node.stop() == 0
    _no_tracebacks(node)
