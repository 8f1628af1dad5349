"""The ``extraData`` byte strings a client hands to a Curio provider, which passes them through
PDPVerifier to FWSS (FOC.md section 1.2; synapse-core ``src/typed-data/sign-*.ts``)::

    create          abi.encode(address payer, uint256 clientDataSetId, string[] keys,
                               string[] values, bytes signature)
    add             abi.encode(uint256 nonce, string[][] keys, string[][] values, bytes signature)
    create-and-add  abi.encode(bytes createExtra, bytes addExtra)
    removals        abi.encode(bytes signature)        (SchedulePieceRemovals)
    terminate       abi.encode(bytes signature)        (TerminateService)

``encode_*`` builds them from a signed message; ``decode_*`` reads them back (our node's side,
and the round-trip tests). Size caps are FWSS's: create <= 4096 bytes, removals/terminate <= 256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.chain.address import parse_address
from gateway.foc.eip712 import (
    AddPieces,
    CreateDataSet,
    Domain,
    MetadataEntry,
    SchedulePieceRemovals,
    Signer,
    TerminateService,
    sign,
)

__all__ = [
    "AddExtra",
    "CreateExtra",
    "ExtraDataError",
    "add_pieces_extra",
    "create_and_add_extra",
    "create_data_set_extra",
    "decode_add",
    "decode_create",
    "decode_create_and_add",
    "decode_signature_only",
    "encode_add",
    "encode_create",
    "encode_create_and_add",
    "encode_signature_only",
    "schedule_removals_extra",
    "terminate_extra",
]

MAX_CREATE_EXTRA = 4096
MAX_SIGNATURE_EXTRA = 256
_CREATE = ("address", "uint256", "string[]", "string[]", "bytes")
_ADD = ("uint256", "string[][]", "string[][]", "bytes")
_PAIR = ("bytes", "bytes")
_SIG = ("bytes",)


@dataclass(frozen=True, slots=True)
class CreateExtra:
    payer: str
    client_data_set_id: int
    metadata: tuple[MetadataEntry, ...]
    signature: bytes


@dataclass(frozen=True, slots=True)
class AddExtra:
    nonce: int
    piece_metadata: tuple[tuple[MetadataEntry, ...], ...]
    signature: bytes


class ExtraDataError(ValueError):
    """Bytes that are not the extraData they claim to be (eth-abi's errors, translated)."""


def _checked(data: bytes, limit: int, what: str) -> bytes:
    if len(data) > limit:
        raise ExtraDataError(f"{what} extraData is {len(data)} bytes; FWSS accepts at most {limit}")
    return data


def encode_create(extra: CreateExtra) -> bytes:
    from eth_abi.abi import encode

    keys = [e.key for e in extra.metadata]
    values = [e.value for e in extra.metadata]
    args = (extra.payer, extra.client_data_set_id, keys, values, extra.signature)
    return _checked(encode(_CREATE, args), MAX_CREATE_EXTRA, "create")


def encode_add(extra: AddExtra) -> bytes:
    from eth_abi.abi import encode

    keys = [[e.key for e in entries] for entries in extra.piece_metadata]
    values = [[e.value for e in entries] for entries in extra.piece_metadata]
    return encode(_ADD, (extra.nonce, keys, values, extra.signature))


def encode_create_and_add(create: bytes, add: bytes) -> bytes:
    from eth_abi.abi import encode

    return encode(_PAIR, (create, add))


def encode_signature_only(signature: bytes) -> bytes:
    from eth_abi.abi import encode

    return _checked(encode(_SIG, (signature,)), MAX_SIGNATURE_EXTRA, "signature")


def _entries(keys: list[str], values: list[str]) -> tuple[MetadataEntry, ...]:
    if len(keys) != len(values):
        raise ValueError("metadata keys and values differ in length")
    return tuple(MetadataEntry(k, v) for k, v in zip(keys, values, strict=True))


def _decode(types: tuple[str, ...], data: bytes) -> tuple[Any, ...]:
    from eth_abi.abi import decode
    from eth_abi.exceptions import DecodingError

    try:
        return decode(types, data)
    except (DecodingError, UnicodeDecodeError, OverflowError) as exc:
        raise ExtraDataError(f"not {', '.join(types)}: {exc}") from None


def decode_create(data: bytes) -> CreateExtra:
    payer, client_id, keys, values, signature = _decode(
        _CREATE, _checked(data, MAX_CREATE_EXTRA, "create")
    )
    metadata = _entries(list(keys), list(values))
    return CreateExtra(parse_address(payer), client_id, metadata, bytes(signature))


def decode_add(data: bytes) -> AddExtra:
    nonce, keys, values, signature = _decode(_ADD, data)
    if len(keys) != len(values):
        raise ValueError("per-piece metadata keys and values differ in length")
    per_piece = tuple(_entries(list(k), list(v)) for k, v in zip(keys, values, strict=True))
    return AddExtra(nonce, per_piece, bytes(signature))


def decode_create_and_add(data: bytes) -> tuple[bytes, bytes]:
    create, add = _decode(_PAIR, data)
    return bytes(create), bytes(add)


def decode_signature_only(data: bytes) -> bytes:
    (signature,) = _decode(_SIG, _checked(data, MAX_SIGNATURE_EXTRA, "signature"))
    return bytes(signature)


# Sign and wrap in one step: what the FOC backend calls.


def create_data_set_extra(
    domain: Domain, message: CreateDataSet, signer: Signer, payer: str | None = None
) -> bytes:
    """``payer`` defaults to the signer (a session key signs for another payer)."""
    signature = sign(domain, message, signer)
    extra = CreateExtra(
        payer or signer.address, message.client_data_set_id, message.metadata, signature
    )
    return encode_create(extra)


def add_pieces_extra(domain: Domain, message: AddPieces, signer: Signer) -> bytes:
    signature = sign(domain, message, signer)
    return encode_add(AddExtra(message.nonce, message.piece_metadata, signature))


def create_and_add_extra(
    domain: Domain, create: CreateDataSet, add: AddPieces, signer: Signer
) -> bytes:
    if create.client_data_set_id != add.client_data_set_id:
        raise ValueError("create and add must name the same clientDataSetId")
    return encode_create_and_add(
        create_data_set_extra(domain, create, signer), add_pieces_extra(domain, add, signer)
    )


def schedule_removals_extra(
    domain: Domain, message: SchedulePieceRemovals, signer: Signer
) -> bytes:
    return encode_signature_only(sign(domain, message, signer))


def terminate_extra(domain: Domain, message: TerminateService, signer: Signer) -> bytes:
    return encode_signature_only(sign(domain, message, signer))
