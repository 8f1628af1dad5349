"""``provenance.json``: which signed batches each file's rows came from, signed by the gateway.

Format ``depin-dataset-provenance-v1``::

    {"format": "depin-dataset-provenance-v1",
     "body": {...},                                   see ``build_body``
     "signature": {"alg": "ed25519", "key": "ed25519:<hex>", "sig": "<hex>"}}

The signature is Ed25519 over ``CONTEXT + canonical(body)``, where canonical JSON is
``json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`` (the body holds
only objects, lists, strings, integers, booleans and null: no floats, so the encoding is unique).
The signing key is the gateway's identity key; it must be one of the chain's keys (the genesis
key or one certified by a rotation in a batch header).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from gateway.dataset.parquet import FileWritten
from gateway.errors import IntegrityError, KeyMaterialError
from gateway.keys import format_gateway_public, parse_gateway_public
from gateway.seal import SignedHeader

__all__ = [
    "CONTEXT",
    "FORMAT",
    "Segment",
    "canonical",
    "file_entry",
    "format_gateway_public",
    "key_chain",
    "segments",
    "sign",
    "unsign",
]

FORMAT = "depin-dataset-provenance-v1"
CONTEXT = b"depin-gateway dataset provenance v1\x00"


def canonical(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of a file's rows from one batch (or from the spool: ``batch`` None)."""

    batch: int | None
    first_row: int
    last_row: int
    first_index: int | None
    last_index: int | None
    first_seq: int
    last_seq: int

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "rows": [self.first_row, self.last_row],
            "batch_index": None
            if self.first_index is None
            else [self.first_index, self.last_index],
            "seq": [self.first_seq, self.last_seq],
        }


def segments(rows: Sequence[tuple[int | None, int | None, int]]) -> list[Segment]:
    """Runs of consecutive rows with the same batch (rows: (batch seq, index, spool seq))."""
    out: list[Segment] = []
    for row, (batch, index, seq) in enumerate(rows):
        if out and out[-1].batch == batch:
            s = out[-1]
            out[-1] = Segment(batch, s.first_row, row, s.first_index, index, s.first_seq, seq)
        else:
            out.append(Segment(batch, row, row, index, index, seq, seq))
    return out


def key_chain(headers: Iterable[SignedHeader], genesis: VerifyKey) -> list[dict[str, Any]]:
    """The genesis key, then each certified rotation: which key signs from which batch on."""
    chain: list[dict[str, Any]] = [{"key": format_gateway_public(genesis), "from_batch": 0}]
    key = genesis
    for signed in sorted(headers, key=lambda h: h.seq):
        rotation = signed.header.rotation
        if rotation is not None and rotation.is_certified_by(key):
            key = VerifyKey(rotation.new_key)
            chain.append(
                {
                    "key": format_gateway_public(key),
                    "certified_in_batch": signed.seq,
                    "from_batch": signed.seq + 1,
                }
            )
    return chain


def file_entry(written: FileWritten, cids: Sequence[str]) -> dict[str, Any]:
    """A file's signed entry; each segment names its batch by number and header CID."""
    runs = [s.to_json() for s in segments(written.items)]
    for run in runs:
        run["batch_cid"] = None if run["batch"] is None else cids[run["batch"]]
    return {
        "path": written.path,
        "source": written.source,
        "day": written.day,
        "sha256": written.sha256,
        "size": written.size,
        "rows": len(written.items),
        "segments": runs,
    }


def sign(body: dict[str, Any], identity: SigningKey) -> dict[str, Any]:
    signature = identity.sign(CONTEXT + canonical(body)).signature
    return {
        "format": FORMAT,
        "body": body,
        "signature": {
            "alg": "ed25519",
            "key": format_gateway_public(identity.verify_key),
            "sig": bytes(signature).hex(),
        },
    }


def unsign(document: Any) -> tuple[dict[str, Any], VerifyKey]:
    """The body of a provenance document whose signature verifies, and the key that signed it.

    Raises ``IntegrityError`` (batch "provenance") naming what is wrong.
    """
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise IntegrityError("provenance", "format", f"not a {FORMAT} document")
    body, signature = document.get("body"), document.get("signature")
    if not isinstance(body, dict) or not isinstance(signature, dict):
        raise IntegrityError("provenance", "body", "body or signature missing")
    try:
        key = parse_gateway_public(str(signature.get("key")))
        sig = bytes.fromhex(str(signature.get("sig")))
        key.verify(CONTEXT + canonical(body), sig)
    except (ValueError, BadSignatureError, IntegrityError) as exc:
        raise IntegrityError(
            "provenance", "signature", f"does not verify under {signature.get('key')} ({exc})"
        ) from None
    except KeyMaterialError as exc:
        raise IntegrityError(
            "provenance", "signature", f"unusable key or signature: {exc}"
        ) from None
    return body, key
