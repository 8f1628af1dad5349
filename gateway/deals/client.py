"""The HTTP client for storage nodes (thin aiohttp adapter; wire formats in gateway/node/API.md).

Every request has a timeout; every failure (refused, reset, timeout, unexpected status, garbage)
becomes ``NodeError(url, reason)``, so callers handle one exception. Responses are read with a
size cap so a hostile node cannot exhaust memory. POST and PUT requests carry RFC 9421
signatures by the gateway key (``gateway.market.httpsig``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from nacl.signing import SigningKey

from gateway.deals.throttle import TokenBucket
from gateway.errors import InputError, NodeError
from gateway.jsonsafe import loads_bounded
from gateway.market.httpsig import sign_request

__all__ = ["NodeClient", "Reply"]

_JSON_LIMIT = 1 << 20
_UPLOAD_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        """The body as JSON, or None for anything else (a node is untrusted: bounded parse)."""
        try:
            return loads_bounded(self.body, "node")
        except InputError:
            return None

    def code(self) -> str:
        data = self.json()
        return str(data.get("code", "")) if isinstance(data, dict) else ""


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


class NodeClient:
    """One aiohttp session for all nodes; create and close inside the service's event loop."""

    def __init__(
        self,
        key: SigningKey,
        timeout: float,
        bucket: TokenBucket | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.timeout = timeout
        self.bucket = bucket
        self.clock = clock
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0)),
            connector=aiohttp.TCPConnector(limit=32, force_close=True),
        )

    async def close(self) -> None:
        await self.session.close()

    def _signed(
        self, method: str, url: str, body: bytes, key: SigningKey | None = None
    ) -> dict[str, str]:
        parts = urlsplit(url)
        return sign_request(
            method,
            parts.path,
            parts.query,
            body,
            key or self.key,
            int(self.clock()),
            secrets.token_urlsafe(12),
        )

    async def request(
        self,
        method: str,
        base: str,
        path: str,
        *,
        body: bytes = b"",
        sign: bool = False,
        key: SigningKey | None = None,
        headers: dict[str, str] | None = None,
        limit: int = _JSON_LIMIT,
        time_limit: float | None = None,
        data: Any = None,
    ) -> Reply:
        url = _join(base, path)
        sent = dict(headers or {})
        if body and "Content-Type" not in sent:
            sent["Content-Type"] = "application/json"
        if sign:
            sent.update(self._signed(method, url, body, key))
        try:
            async with self.session.request(
                method,
                url,
                data=data if data is not None else (body or None),
                headers=sent,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=time_limit or self.timeout),
            ) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise NodeError(base, f"{method} {path}: response over {limit} bytes")
                    chunks.append(chunk)
                return Reply(response.status, b"".join(chunks), dict(response.headers))
        except TimeoutError:
            raise NodeError(base, f"{method} {path}: timed out") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise NodeError(base, f"{method} {path}: {type(exc).__name__}: {exc}") from None

    # -- API calls ---------------------------------------------------------------------------

    async def ask(self, base: str) -> Any:
        reply = await self.request("GET", base, "/market/v1/ask")
        if reply.status != 200:
            raise NodeError(base, f"ask: HTTP {reply.status}")
        return reply.json()

    async def propose(self, base: str, proposal: dict[str, Any]) -> Reply:
        body = json.dumps(proposal).encode()
        return await self.request("POST", base, "/market/v1/deals", body=body, sign=True)

    async def deal(self, base: str, deal_id: str) -> Reply:
        return await self.request("GET", base, f"/market/v1/deals/{deal_id}")

    async def holds(self, base: str, piece_cid: str) -> bool:
        reply = await self.request("GET", base, f"/pdp/piece/?pieceCid={piece_cid}")
        if reply.status not in (200, 404):
            raise NodeError(base, f"piece lookup: HTTP {reply.status}")
        return reply.status == 200

    async def upload(self, base: str, upload_url: str, payload: bytes) -> Reply:
        """PUT the piece payload, paced by the token bucket, with a size-scaled timeout."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(payload))}
        headers.update(self._signed("PUT", _join(base, upload_url), payload))
        rate = self.bucket.rate if self.bucket else 0.0
        timeout = self.timeout + (len(payload) / rate if rate else 0.0)
        return await self.request(
            "PUT", base, upload_url, headers=headers, data=self._paced(payload), time_limit=timeout
        )

    async def _paced(self, payload: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(payload), _UPLOAD_CHUNK):
            chunk = payload[start : start + _UPLOAD_CHUNK]
            if self.bucket is not None:
                wait = self.bucket.delay(len(chunk), time.monotonic())
                if wait > 0:
                    await asyncio.sleep(wait)
            yield chunk

    async def prove(self, base: str, piece_cid: str, leaves: list[int]) -> Reply:
        body = json.dumps({"pieceCid": piece_cid, "leaves": leaves}).encode()
        return await self.request("POST", base, "/market/v1/prove", body=body)

    async def piece(
        self, base: str, piece_cid: str, size_limit: int, byte_range: tuple[int, int] | None = None
    ) -> bytes:
        """The piece payload (or ``[start, end)`` of it); NodeError unless 200/206."""
        headers = {}
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        reply = await self.request(
            "GET", base, f"/piece/{piece_cid}", headers=headers, limit=size_limit
        )
        if reply.status == 206 and byte_range is not None:
            return reply.body
        if reply.status == 200:
            if byte_range is not None:
                return reply.body[byte_range[0] : byte_range[1]]
            return reply.body
        raise NodeError(base, f"piece {piece_cid[:24]}...: HTTP {reply.status}")

    async def voucher(
        self, base: str, deal_id: str, voucher: dict[str, Any], key: SigningKey | None = None
    ) -> Reply:
        """``key``: the deal's client key, when it is not the current identity (a rotation)."""
        body = json.dumps(voucher).encode()
        return await self.request(
            "POST", base, f"/market/v1/deals/{deal_id}/vouchers", body=body, sign=True, key=key
        )
