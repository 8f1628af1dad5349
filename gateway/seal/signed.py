"""A signed batch header: the header, the gateway's Ed25519 signature, and its block and CID.

The block is the DAG-CBOR map ``{"header": <header map>, "signature": 64 bytes}``, the signature
being over the DAG-CBOR of the header map alone (``BatchHeader.signing_bytes``). The block's CID
(dag-cbor, sha2-256) is the batch's id: what the next header links as ``prev`` and what the
ledger head names. ``from_block`` parses strictly and accepts only the canonical encoding, so a
block and its ``SignedHeader`` correspond one to one.
"""

from __future__ import annotations

from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from gateway.errors import GatewayError, InputError, IntegrityError
from gateway.keys import format_gateway_public
from gateway.piece.cid import Cid
from gateway.piece.dagcbor import cid_for_dag_cbor, dag_cbor_decode, dag_cbor_encode
from gateway.seal.header import BatchHeader, HeaderFieldError

__all__ = ["SignedHeader", "sign_header"]


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """A header and the gateway's Ed25519 signature over its canonical encoding."""

    header: BatchHeader
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.signature) != 64:
            raise HeaderFieldError("signature", "must be 64 bytes")

    @property
    def seq(self) -> int:
        return self.header.seq

    def block(self) -> bytes:
        """The DAG-CBOR block stored and linked by the next batch."""
        return dag_cbor_encode({"header": self.header.to_ipld(), "signature": self.signature})

    def cid(self) -> Cid:
        return cid_for_dag_cbor(self.block())

    def check_signature(self, key: VerifyKey | None = None) -> None:
        """Raise ``IntegrityError`` unless ``key`` (default: the header's own) signed this."""
        seq = self.header.seq
        if key is not None and bytes(key) != self.header.gateway:
            raise IntegrityError(
                seq,
                "gateway",
                f"header names {format_gateway_public(VerifyKey(self.header.gateway))}, "
                f"expected {format_gateway_public(key)}",
            )
        try:
            VerifyKey(self.header.gateway).verify(self.header.signing_bytes(), self.signature)
        except BadSignatureError:
            raise IntegrityError(
                seq, "signature", "does not match the header (edited after signing?)"
            ) from None

    @classmethod
    def from_block(cls, block: bytes, batch: int | str | None = None) -> SignedHeader:
        """Parse a stored block strictly; anything wrong raises ``IntegrityError``."""
        label: int | str = "?" if batch is None else batch
        try:
            obj = dag_cbor_decode(block)
        except InputError as exc:
            raise IntegrityError(label, "header", f"not a DAG-CBOR block: {exc.reason}") from None
        if not isinstance(obj, dict) or set(obj) != {"header", "signature"}:
            raise IntegrityError(label, "header", "not a signed header block")
        if batch is None and isinstance(obj["header"], dict):
            seq = obj["header"].get("seq")
            label = seq if isinstance(seq, int) else label
        try:
            signature = obj["signature"]
            if not isinstance(signature, bytes):
                raise HeaderFieldError("signature", "not bytes")
            signed = cls(BatchHeader.from_ipld(obj["header"]), bytes(signature))
        except HeaderFieldError as exc:
            raise IntegrityError(label, exc.field, exc.reason) from None
        except (ValueError, GatewayError) as exc:  # any other value that does not fit
            raise IntegrityError(label, "header", str(exc)) from None
        if signed.block() != block:
            raise IntegrityError(label, "header", "block is not canonical DAG-CBOR")
        return signed


def sign_header(header: BatchHeader, identity: SigningKey) -> SignedHeader:
    """Sign ``header`` with the gateway identity (which must be the key the header names)."""
    if bytes(identity.verify_key) != header.gateway:
        raise ValueError("the identity key is not the gateway key named in the header")
    signed = identity.sign(header.signing_bytes())
    return SignedHeader(header, bytes(signed.signature))
