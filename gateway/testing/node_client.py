"""Helpers for tests that talk to a real node (ours, and the deal client's): a settable clock, a
node config in a temp dir, and a signing HTTP client. Not used by the node itself.
"""

from __future__ import annotations

import io
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from nacl.signing import SigningKey

from gateway.keys import create_identity, format_gateway_public
from gateway.market.epoch import epoch_at
from gateway.market.httpsig import sign_request
from gateway.market.messages import DealProposal
from gateway.node.config import NodeConfig, node_config_from_string
from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import PieceInfo, commp, unpadded_size

__all__ = [
    "REPLAY_HEADER",
    "FakeClock",
    "NodeProcess",
    "SigningClient",
    "fake_piece",
    "make_node_config",
    "make_proposal",
    "piece_of",
    "proposal_for",
    "replay_segments",
]

START = 1_760_000_000.0  # 2025-10-09, a fixed "now" for tests


class FakeClock:
    """Unix time that only moves when told to."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def epoch(self) -> int:
        return epoch_at(self.now)


def make_node_config(directory: Path, **settings: Any) -> NodeConfig:
    """A ``[node]`` config on 127.0.0.1:0 with its key created; ``settings`` are TOML values."""
    data_dir = directory / "node"
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "data_dir": str(data_dir),
        "rate_requests": 100000,
        "rate_burst": 100000,
        **settings,
    }
    text = "[node]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    config = node_config_from_string(text, directory / "node.toml")
    if not config.identity.exists():
        create_identity(config.identity)
    return config


def piece_of(data: bytes) -> str:
    return str(piece_cid_v2(commp(data)))


def fake_piece(padded_size: int) -> PieceInfo:
    """A valid piece CID's info for a piece nobody has (reservations without the bytes)."""
    root = os.urandom(31) + bytes([secrets.randbits(6)])
    height = padded_size.bit_length() - 6  # 32 << height == padded_size
    return PieceInfo(root, unpadded_size(padded_size), padded_size, height)


def make_proposal(
    client: SigningKey, provider: str, data: bytes, epoch: int, **changes: Any
) -> dict[str, Any]:
    """A signed proposal for ``data`` starting 10 epochs after ``epoch``, lasting a day."""
    return proposal_for(client, provider, commp(data), epoch, **changes)


def proposal_for(
    client: SigningKey, provider: str, info: PieceInfo, epoch: int, **changes: Any
) -> dict[str, Any]:
    """A signed proposal for the piece ``info`` (see ``make_proposal``)."""
    fields: dict[str, Any] = {
        "piece_cid": str(piece_cid_v2(info)),
        "piece_size": info.padded_size,
        "verified_deal": False,
        "client": format_gateway_public(client.verify_key),
        "provider": provider,
        "label": "test",
        "start_epoch": epoch + 10,
        "end_epoch": epoch + 10 + 2880,
        "storage_price_per_epoch": 10**9,
        "provider_collateral": 0,
        "client_collateral": 0,
        "nonce": secrets.token_hex(8),
        **changes,
    }
    return DealProposal(**fields).sign(client)


class SigningClient:
    """An aiohttp session whose requests are signed (RFC 9421) by ``key`` at ``clock()``."""

    def __init__(
        self, base_url: str, key: SigningKey, clock: Any, local_addr: str | None = None
    ) -> None:
        """``local_addr``: connect from this loopback address (127.0.0.x are all ours)."""
        self.base = base_url.rstrip("/")
        self.key = key
        self.clock = clock
        connector = aiohttp.TCPConnector(local_addr=(local_addr, 0) if local_addr else None)
        self.session = aiohttp.ClientSession(connector=connector)

    def headers(
        self, method: str, path: str, body: bytes, query: str = "", nonce: str | None = None
    ) -> dict[str, str]:
        return sign_request(
            method, path, query, body, self.key, int(self.clock()), nonce or secrets.token_hex(12)
        )

    async def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        json_body: Any = None,
        sign: bool = True,
        headers: dict[str, str] | None = None,
        data: AsyncIterable[bytes] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, parsed JSON or raw bytes, headers)."""
        if json_body is not None:
            body = json.dumps(json_body).encode()
        raw = body or b""
        all_headers = self.headers(method, path, raw) if sign else {}
        all_headers.update(headers or {})
        payload: Any = data if data is not None else io.BytesIO(raw) if len(raw) > 1 << 20 else raw
        async with self.session.request(
            method, self.base + path, data=payload, headers=all_headers
        ) as response:
            content = await response.read()
            parsed: Any = content
            if response.content_type == "application/json":
                parsed = json.loads(content)
            return response.status, parsed, dict(response.headers)

    async def close(self) -> None:
        await self.session.close()


REPLAY_HEADER = b"depin-node-replay 1\n"


def replay_segments(data_dir: Path) -> dict[Path, tuple[bytes, int]]:
    """Each replay segment file of a node's data directory: its bytes and inode."""
    return {p: (p.read_bytes(), p.stat().st_ino) for p in (data_dir / "replay").iterdir()}


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


# Below Linux's ephemeral range (ip_local_port_range, 32768-60999 by default): no outgoing
# connection and no bind to port 0, by any process on the machine, is ever given such a port, so
# it stays ours while a node restarts on it. A port from bind(0) could be taken in that window.
_QUIET_PORTS = range(20_000, 32_768)


def restartable_port() -> int:
    """A free loopback port outside the ephemeral range (see ``_QUIET_PORTS``)."""
    for _ in range(200):
        port = random.choice(_QUIET_PORTS)  # not a secret: any free port will do
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free loopback port in 20000-32767")


class NodeProcess:
    """``python -m gateway.node run`` as a child process on a free loopback port.

    ``prefix`` runs it under another command (``["prlimit", "--nofile=256:256", "--"]``);
    ``settings`` are ``[node]`` TOML values. Its log (stdout and stderr) goes to ``log_path``.
    """

    def __init__(self, directory: Path, prefix: Sequence[str] = (), **settings: Any) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{restartable_port()}"
        self.config_path = directory / "node.toml"
        self.log_path = directory / "node.log"
        values = {
            "listen": self.url.removeprefix("http://"),
            "data_dir": str(directory / "data"),
            "rate_requests": 100000,
            "rate_burst": 100000,
            **settings,
        }
        text = "[node]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        self.config_path.write_text(text, encoding="utf-8")
        self.config = node_config_from_string(text, self.config_path)
        key = create_identity(self.config.identity)
        self.provider = format_gateway_public(key.verify_key)
        self.prefix = list(prefix)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def start(self, within: float = 30.0) -> None:
        command = [*self.prefix, sys.executable, "-m", "gateway.node", "run"]
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [*command, "--config", str(self.config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[2],
            )
        deadline = time.monotonic() + within
        while not self._answers():
            if self.process.poll() is not None:
                raise AssertionError(f"node exited {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"node did not answer within {within} s:\n{self.log()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        """Ready means *this* node answers: its provider key in ``/status``, not merely some
        server on the port (another process may hold it while this one fails to bind)."""
        try:
            # our own http:// URL, built in __init__
            with urllib.request.urlopen(self.url + "/status", timeout=5) as response:  # noqa: S310
                return bool(json.loads(response.read()).get("provider") == self.provider)
        except (OSError, ValueError):
            return False

    def stop(self) -> int:
        """SIGTERM, then the exit status (SIGKILL after 15 s)."""
        if self.process is None:
            return 0
        process, self.process = self.process, None
        if process.poll() is None:
            process.terminate()
        try:
            return process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(15)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(15)
            self.process = None
