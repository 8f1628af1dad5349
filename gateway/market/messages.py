"""Signed market messages: asks, deal proposals and acceptances, payment vouchers.

Every message travels as JSON::

    {"kind": "depin/deal-proposal/v1", "body": {...},
     "signer": "ed25519:<hex>", "signature": "<hex>"}

and the signature is Ed25519 over the DAG-CBOR encoding of ``{"kind": kind, "body": body}``
(canonical: one encoding per value), so both sides sign identical bytes whatever their JSON
library did with whitespace or key order. Amounts are attoFIL as decimal strings (they outgrow
64 bits); epochs are Filecoin mainnet epochs (``gateway.market.epoch``). The body dataclasses are
validated when built, so one that exists is well formed; ``from_body`` raises ``InputError``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from gateway.errors import InputError, KeyMaterialError
from gateway.keys import format_gateway_public, parse_gateway_public
from gateway.piece.dagcbor import dag_cbor_encode

__all__ = [
    "Ask",
    "DealAcceptance",
    "DealProposal",
    "Voucher",
    "open_signed",
    "seal_signed",
]

T = TypeVar("T", bound="_Body")


def _fail(kind: str, reason: str) -> InputError:
    return InputError(kind, reason)


def signing_bytes(kind: str, body: Mapping[str, Any]) -> bytes:
    return dag_cbor_encode({"kind": kind, "body": dict(body)})


def seal_signed(kind: str, body: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    signature = key.sign(signing_bytes(kind, body)).signature
    return {
        "kind": kind,
        "body": dict(body),
        "signer": format_gateway_public(key.verify_key),
        "signature": signature.hex(),
    }


def open_signed(
    wire: Any, kind: str, signer: VerifyKey | None = None
) -> tuple[dict[str, Any], VerifyKey]:
    """Check a signed message of ``kind`` (and its signer, if given); returns (body, signer)."""
    if not isinstance(wire, dict) or wire.get("kind") != kind:
        raise _fail(kind, f"expected a signed {kind} message")
    body = wire.get("body")
    if not isinstance(body, dict):
        raise _fail(kind, "body must be an object")
    try:
        key = parse_gateway_public(str(wire.get("signer", "")))
        signature = bytes.fromhex(str(wire.get("signature", "")))
    except (KeyMaterialError, ValueError) as exc:
        raise _fail(kind, f"bad signer or signature encoding: {exc}") from None
    if signer is not None and bytes(key) != bytes(signer):
        raise _fail(kind, "signed by the wrong key")
    try:
        key.verify(signing_bytes(kind, body), signature)
    except (BadSignatureError, ValueError, InputError):
        raise _fail(kind, "signature does not verify") from None
    return body, key


MAX_AMOUNT_DIGITS = 40  # attoFIL: 10**40 is ~10**13 times all FIL there will ever be
_DECIMAL = re.compile(rf"[0-9]{{1,{MAX_AMOUNT_DIGITS}}}", re.ASCII)


def _amount(value: Any, field: str) -> int:
    # ASCII digits only and few of them: str.isdigit() admits "²", which int() refuses, and
    # int() of 4,300+ digits raises; either would escape as a ValueError far from here
    if isinstance(value, int) and not isinstance(value, bool):
        amount = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        amount = int(value)
    else:
        raise _fail("market", f"{field}: expected attoFIL as 1..{MAX_AMOUNT_DIGITS} decimal digits")
    if not 0 <= amount < 10**MAX_AMOUNT_DIGITS:
        raise _fail("market", f"{field}: {MAX_AMOUNT_DIGITS}+ digit amounts are not accepted")
    return amount


@dataclass(frozen=True, slots=True)
class _Body:
    KIND: ClassVar[str] = ""
    AMOUNTS: ClassVar[tuple[str, ...]] = ()

    def body(self) -> dict[str, Any]:
        data = asdict(self)
        for name in self.AMOUNTS:
            data[name] = str(data[name])
        return data

    def sign(self, key: SigningKey) -> dict[str, Any]:
        return seal_signed(self.KIND, self.body(), key)

    @classmethod
    def from_body(cls: type[T], body: Mapping[str, Any]) -> T:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in body]
        if missing:
            raise _fail(cls.KIND, "missing fields: " + ", ".join(missing))
        values = {n: body[n] for n in names}
        for name in cls.AMOUNTS:
            values[name] = _amount(values[name], name)
        for f in fields(cls):
            if f.name not in cls.AMOUNTS and not _TYPE_CHECKS[str(f.type)](values[f.name]):
                raise _fail(cls.KIND, f"{f.name}: expected {f.type}")
        try:
            return cls(**values)
        except (TypeError, ValueError, KeyMaterialError) as exc:
            raise _fail(cls.KIND, str(exc)) from None

    @classmethod
    def open(cls: type[T], wire: Any, signer: VerifyKey | None = None) -> tuple[T, VerifyKey]:
        body, key = open_signed(wire, cls.KIND, signer)
        return cls.from_body(body), key


_TYPE_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
}


def _check(condition: bool, reason: str) -> None:
    if not condition:
        raise ValueError(reason)


def _is_int(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


@dataclass(frozen=True, slots=True)
class Ask(_Body):
    """A node's signed offer (``GET /market/v1/ask``; retained on the fleet broker)."""

    KIND: ClassVar[str] = "depin/ask/v1"
    AMOUNTS: ClassVar[tuple[str, ...]] = ("price_per_gib_epoch",)

    provider: str  # ed25519:<hex>
    url: str
    price_per_gib_epoch: int
    min_piece_size: int  # padded bytes
    max_piece_size: int
    free_bytes: int
    max_duration_epochs: int
    expiry_epoch: int
    seq: int  # newer asks from the same provider have higher seq

    def __post_init__(self) -> None:
        parse_gateway_public(self.provider)
        _check(_is_int(self.price_per_gib_epoch, self.min_piece_size, self.max_piece_size,
                       self.free_bytes, self.max_duration_epochs, self.expiry_epoch, self.seq),
               "ask fields must be integers")  # fmt: skip
        _check(self.price_per_gib_epoch >= 0, "price must be >= 0")
        _check(0 < self.min_piece_size <= self.max_piece_size, "piece size limits out of order")
        _check(self.url.startswith(("http://", "https://")), "url must be http(s)")


@dataclass(frozen=True, slots=True)
class DealProposal(_Body):
    """Mirrors Filecoin's DealProposal (market actor); signed by the client."""

    KIND: ClassVar[str] = "depin/deal-proposal/v1"
    AMOUNTS: ClassVar[tuple[str, ...]] = (
        "storage_price_per_epoch",
        "provider_collateral",
        "client_collateral",
    )

    piece_cid: str  # piece CID v2 (FRC-0069)
    piece_size: int  # padded size
    verified_deal: bool
    client: str  # ed25519:<hex>
    provider: str
    label: str
    start_epoch: int
    end_epoch: int
    storage_price_per_epoch: int
    provider_collateral: int
    client_collateral: int
    nonce: str  # makes two proposals for the same piece distinct

    def __post_init__(self) -> None:
        parse_gateway_public(self.client)
        parse_gateway_public(self.provider)
        _check(_is_int(self.piece_size, self.start_epoch, self.end_epoch), "sizes/epochs: ints")
        _check(self.piece_size >= 128 and self.piece_size & (self.piece_size - 1) == 0,
               "piece_size must be a padded power of two >= 128")  # fmt: skip
        _check(0 <= self.start_epoch < self.end_epoch, "start_epoch must precede end_epoch")
        _check(len(self.label) <= 256 and len(self.nonce) <= 64, "label or nonce too long")
        for name in self.AMOUNTS:
            _check(getattr(self, name) >= 0, f"{name} must be >= 0")

    @property
    def duration(self) -> int:
        return self.end_epoch - self.start_epoch

    @property
    def total_price(self) -> int:
        return self.storage_price_per_epoch * self.duration

    def deal_id(self) -> str:
        """Stable id: hash of the signed-over bytes (both sides compute the same)."""
        return hashlib.sha256(signing_bytes(self.KIND, self.body())).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class DealAcceptance(_Body):
    """The provider's signed answer to a proposal."""

    KIND: ClassVar[str] = "depin/deal-acceptance/v1"

    deal_id: str
    piece_cid: str
    client: str
    provider: str
    accepted: bool
    reason: str
    upload_url: str  # where to PUT the piece (Location of POST /pdp/piece), "" if held already
    epoch: int


@dataclass(frozen=True, slots=True)
class Voucher(_Body):
    """A cumulative payment voucher, like a Filecoin payment-channel voucher."""

    KIND: ClassVar[str] = "depin/voucher/v1"
    AMOUNTS: ClassVar[tuple[str, ...]] = ("amount",)

    deal_id: str
    lane: int
    nonce: int
    amount: int  # cumulative attoFIL paid on this lane so far

    def __post_init__(self) -> None:
        _check(_is_int(self.lane, self.nonce) and self.lane >= 0 and self.nonce >= 0,
               "lane and nonce are non-negative integers")  # fmt: skip
        _check(self.amount >= 0, "amount must be >= 0")
