"""A client for the Curio PDP HTTP API that FOC providers serve (FOC.md 1.2-1.3, field names
exact), synchronous and small: the FOC engine runs it on its own thread.

No ``Authorization`` header is sent (synapse-core sends none; Curio's public service). Every
reply is read with a size cap and parsed with the shared bounds; every failure (refused, reset,
timeout, unexpected status, garbage) is ``NodeError(url, reason)``. The transport is injected.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

from gateway.errors import InputError, NodeError
from gateway.jsonsafe import loads_bounded

__all__ = ["AddStatus", "CreateStatus", "CurioClient", "HttpReply", "urllib_transport"]

_MAX_JSON = 1 << 20


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    headers: dict[str, str]


Transport = Callable[[str, str, bytes | None, dict[str, str], float, int], HttpReply]


def urllib_transport(
    method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float, cap: int
) -> HttpReply:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - http(s)
            return HttpReply(reply.status, reply.read(cap + 1), dict(reply.headers))
    except urllib.error.HTTPError as exc:
        return HttpReply(exc.code, exc.read(cap + 1), dict(exc.headers))
    except (OSError, ValueError) as exc:  # refused, reset, timeout, bad URL
        raise NodeError(url, f"{method} failed: {type(exc).__name__}: {exc}"[:200]) from exc


@dataclass(frozen=True, slots=True)
class CreateStatus:
    """GET /pdp/data-sets/created/{tx}."""

    tx_status: str  # pending | confirmed | rejected
    created: bool
    data_set_id: int
    confirmed_tx_hash: str


@dataclass(frozen=True, slots=True)
class AddStatus:
    """GET /pdp/data-sets/{id}/pieces/added/{tx}."""

    tx_status: str
    added: bool
    piece_ids: tuple[int, ...]
    confirmed_tx_hash: str


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class CurioClient:
    def __init__(self, base_url: str, timeout: float, transport: Transport = urllib_transport):
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self._transport = transport

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        cap: int = _MAX_JSON,
    ) -> HttpReply:
        head = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            head["Content-Type"] = "application/json"
        url = path if path.startswith("http") else self.base + path
        reply = self._transport(method, url, body, head, self.timeout, cap)
        if len(reply.body) > cap:
            raise NodeError(self.base, f"{method} {path}: reply over {cap} bytes")
        return reply

    def _json(self, reply: HttpReply, what: str) -> dict[str, Any]:
        try:
            value = loads_bounded(reply.body, self.base)
        except InputError as exc:
            raise NodeError(self.base, f"{what}: not JSON") from exc
        if not isinstance(value, dict):
            raise NodeError(self.base, f"{what}: not a JSON object")
        return value

    def _fail(self, reply: HttpReply, what: str) -> NodeError:
        text = reply.body[:120].decode("utf-8", "replace").strip()
        return NodeError(self.base, f"{what}: HTTP {reply.status} {text!r}")

    def _location(self, reply: HttpReply, what: str) -> str:
        location = reply.headers.get("Location") or reply.headers.get("location") or ""
        if reply.status != 201 or not location:
            raise self._fail(reply, what)
        return urljoin(self.base + "/", location)

    def find_piece(self, piece_cid: str) -> bool:
        """GET /pdp/piece?pieceCid= : True when the provider holds ("parked") this piece."""
        reply = self._request("GET", f"/pdp/piece?pieceCid={quote(piece_cid)}")
        if reply.status in (404, 202):
            return False
        if reply.status != 200:
            raise self._fail(reply, "find piece")
        return self._json(reply, "find piece").get("pieceCid") == piece_cid

    def upload(self, piece_cid: str, data: bytes) -> None:
        """POST /pdp/piece then PUT the bytes (nothing to PUT when it answers 200)."""
        reply = self._request("POST", "/pdp/piece", json_body={"pieceCid": piece_cid})
        if reply.status == 200:
            return
        target = self._location(reply, "POST /pdp/piece")
        put = self._request(
            "PUT", target, data, headers={"Content-Type": "application/octet-stream"}
        )
        if put.status not in (200, 204):
            raise self._fail(put, "PUT piece")

    def upload_streaming(self, piece_cid: str, data: bytes) -> None:
        """POST /pdp/piece/uploads, PUT the bytes, POST the piece CID to finalize."""
        target = self._location(self._request("POST", "/pdp/piece/uploads", b""), "POST uploads")
        put = self._request(
            "PUT", target, data, headers={"Content-Type": "application/octet-stream"}
        )
        if put.status not in (200, 204):
            raise self._fail(put, "PUT upload")
        done = self._request("POST", target, json_body={"pieceCid": piece_cid})
        if done.status not in (200, 201):
            raise self._fail(done, "finalize upload")

    @staticmethod
    def _pieces(cids: Sequence[str]) -> list[dict[str, Any]]:
        return [{"pieceCid": c, "subPieces": [{"subPieceCid": c}]} for c in cids]

    def create_and_add(self, record_keeper: str, cids: Sequence[str], extra: bytes) -> str:
        body = {
            "recordKeeper": record_keeper,
            "pieces": self._pieces(cids),
            "extraData": "0x" + extra.hex(),
        }
        reply = self._request("POST", "/pdp/data-sets/create-and-add", json_body=body)
        return self._location(reply, "create-and-add").rstrip("/").rsplit("/", 1)[-1]

    def add_pieces(self, data_set_id: int, cids: Sequence[str], extra: bytes) -> str:
        body = {"pieces": self._pieces(cids), "extraData": "0x" + extra.hex()}
        reply = self._request("POST", f"/pdp/data-sets/{data_set_id}/pieces", json_body=body)
        return self._location(reply, "add pieces").rstrip("/").rsplit("/", 1)[-1]

    def created(self, tx_hash: str) -> CreateStatus:
        reply = self._request("GET", f"/pdp/data-sets/created/{quote(tx_hash)}")
        if reply.status != 200:
            raise self._fail(reply, "data set status")
        s = self._json(reply, "data set status")
        return CreateStatus(
            str(s.get("txStatus", "")),
            s.get("dataSetCreated") is True,
            _int(s.get("dataSetId")),
            str(s.get("confirmedTxHash") or ""),
        )

    def added(self, data_set_id: int, tx_hash: str) -> AddStatus:
        path = f"/pdp/data-sets/{data_set_id}/pieces/added/{quote(tx_hash)}"
        reply = self._request("GET", path)
        if reply.status != 200:
            raise self._fail(reply, "pieces status")
        s = self._json(reply, "pieces status")
        ids = s.get("confirmedPieceIds") or []
        pieces = tuple(_int(i) for i in ids) if isinstance(ids, list) else ()
        return AddStatus(
            str(s.get("txStatus", "")),
            s.get("piecesAdded") is True,
            pieces,
            str(s.get("confirmedTxHash") or ""),
        )

    def read_range(self, piece_cid: str, start: int, end: int) -> bytes:
        """GET /piece/{cid} bytes ``start..end`` inclusive (HTTP Range); exact length or error."""
        want = end - start + 1
        reply = self._request(
            "GET", f"/piece/{quote(piece_cid)}", headers={"Range": f"bytes={start}-{end}"}, cap=want
        )
        if reply.status == 200 and len(reply.body) > want:
            raise NodeError(self.base, "range ignored")
        if reply.status != 206 or len(reply.body) != want:
            raise self._fail(reply, "range read")
        return reply.body

    def read_piece(self, piece_cid: str, size: int) -> bytes:
        reply = self._request("GET", f"/piece/{quote(piece_cid)}", cap=size)
        if reply.status != 200:
            raise self._fail(reply, "download")
        return reply.body
