"""What the node answers a request it refuses, and the parsing helper every route shares."""

from __future__ import annotations

from typing import Any

from gateway.errors import InputError
from gateway.piece.cid import piece_cid_v2, piece_info_from_v2
from gateway.piece.commp import PieceInfo

__all__ = ["ClientError", "parse_piece_v2", "provider_id_for"]


class ClientError(InputError):
    """A request the node refuses: HTTP ``status``, a stable ``code`` and a clear message."""

    def __init__(self, status: int, code: str, message: str, retry_after: float = 0.0) -> None:
        super().__init__("client", message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def provider_id_for(provider: str) -> str:
    return provider.removeprefix("ed25519:")[:16]


def parse_piece_v2(text: Any, field: str = "pieceCid") -> tuple[str, PieceInfo]:
    """Normalised CID text and piece info of a client-supplied piece CID v2 (400 otherwise)."""
    if not isinstance(text, str) or not text:
        raise ClientError(400, "bad_request", f"{field} must be a piece CID v2 string")
    try:
        info = piece_info_from_v2(text)
    except InputError as exc:
        raise ClientError(400, "bad_request", f"{field}: {exc.reason}") from None
    return str(piece_cid_v2(info)), info
