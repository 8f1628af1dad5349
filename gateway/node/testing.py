"""Helpers for tests that talk to a real node (ours, and the deal client's): a settable clock, a
node config in a temp dir, and a signing HTTP client. Not used by the node itself.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from collections.abc import AsyncIterable
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
from gateway.piece.commp import commp

__all__ = ["FakeClock", "SigningClient", "make_node_config", "make_proposal", "piece_of"]

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


def make_proposal(
    client: SigningKey, provider: str, data: bytes, epoch: int, **changes: Any
) -> dict[str, Any]:
    """A signed proposal for ``data`` starting 10 epochs after ``epoch``, lasting a day."""
    info = commp(data)
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

    def __init__(self, base_url: str, key: SigningKey, clock: Any) -> None:
        self.base = base_url.rstrip("/")
        self.key = key
        self.clock = clock
        self.session = aiohttp.ClientSession()

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


def random_bytes(size: int) -> bytes:
    return os.urandom(size)
