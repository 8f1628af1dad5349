"""EIP-712 typed data that the Filecoin Warm Storage Service (FWSS) contract verifies.

Facts (FOC.md section 1.2; FilOzone/filecoin-services ``src/lib/SignatureVerificationLib.sol``,
identical in synapse-core ``src/typed-data/type-definitions.ts``)::

    domain  {name: "FilecoinWarmStorageService", version: "1", chainId, verifyingContract: FWSS}
    MetadataEntry(string key,string value)
    CreateDataSet(uint256 clientDataSetId,address payee,MetadataEntry[] metadata)
    Cid(bytes data)                                        data = binary piece CID v2
    PieceMetadata(uint256 pieceIndex,MetadataEntry[] metadata)
    AddPieces(uint256 clientDataSetId,uint256 nonce,Cid[] pieceData,PieceMetadata[] pieceMetadata)
    SchedulePieceRemovals(uint256 clientDataSetId,uint256[] pieceIds)
    TerminateService(uint256 dataSetId)

Messages are frozen dataclasses validated when built against FWSS's limits (a message the
contract would reject is never signed). Hashing and signing go through eth-account, imported on
first use; ``tests/vectors/foc`` pins every signature byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.chain.address import parse_address
from gateway.errors import ConfigError

__all__ = [
    "MAX_KEYS_PER_DATA_SET",
    "MAX_KEYS_PER_PIECE",
    "MAX_KEY_BYTES",
    "MAX_PIECES_PER_ADD",
    "MAX_VALUE_BYTES",
    "TYPES",
    "AddPieces",
    "CreateDataSet",
    "Domain",
    "MetadataEntry",
    "SchedulePieceRemovals",
    "Signer",
    "TerminateService",
    "digest",
    "sign",
    "type_hash",
    "typed_data",
]

DOMAIN_NAME = "FilecoinWarmStorageService"
DOMAIN_VERSION = "1"
# FWSS constants MAX_KEYS_PER_DATASET, MAX_KEYS_PER_PIECE, MAX_KEY_LENGTH, MAX_VALUE_LENGTH
# (lengths are bytes(key).length: UTF-8 bytes); FWSS also reverts on a repeated key.
MAX_KEYS_PER_DATA_SET = 10
MAX_KEYS_PER_PIECE = 3
MAX_KEY_BYTES = 32
MAX_VALUE_BYTES = 96
MAX_PIECES_PER_ADD = 40  # Curio and synapse-core MAX_ADD_PIECES_BATCH_SIZE
_UINT256_MAX = 2**256 - 1

_EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def _fields(spec: str) -> list[dict[str, str]]:
    return [dict(zip(("type", "name"), f.split(" "), strict=True)) for f in spec.split(",")]


TYPES: dict[str, list[dict[str, str]]] = {
    "MetadataEntry": _fields("string key,string value"),
    "CreateDataSet": _fields("uint256 clientDataSetId,address payee,MetadataEntry[] metadata"),
    "Cid": _fields("bytes data"),
    "PieceMetadata": _fields("uint256 pieceIndex,MetadataEntry[] metadata"),
    "AddPieces": _fields(
        "uint256 clientDataSetId,uint256 nonce,Cid[] pieceData,PieceMetadata[] pieceMetadata"
    ),
    "SchedulePieceRemovals": _fields("uint256 clientDataSetId,uint256[] pieceIds"),
    "TerminateService": _fields("uint256 dataSetId"),
}
# Each primary type with the struct types it references (EIP-712 encodeType appends those).
_REFERENCED = {
    "CreateDataSet": ("MetadataEntry",),
    "AddPieces": ("Cid", "MetadataEntry", "PieceMetadata"),
    "SchedulePieceRemovals": (),
    "TerminateService": (),
}


def _uint256(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT256_MAX:
        raise ValueError(f"{name} must be an integer in [0, 2^256-1], not {value!r}")
    return value


def _address(name: str, value: str) -> str:
    try:
        return parse_address(value, name)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class MetadataEntry:
    key: str
    value: str

    def __post_init__(self) -> None:
        if not 0 < len(self.key.encode()) <= MAX_KEY_BYTES:
            raise ValueError(f"metadata key {self.key!r}: 1..{MAX_KEY_BYTES} UTF-8 bytes")
        if len(self.value.encode()) > MAX_VALUE_BYTES:
            raise ValueError(f"metadata value of {self.key!r}: at most {MAX_VALUE_BYTES} bytes")


def _metadata(entries: tuple[MetadataEntry, ...], limit: int, where: str) -> list[dict[str, str]]:
    if len(entries) > limit:
        raise ValueError(f"{where}: at most {limit} metadata entries, not {len(entries)}")
    if len({e.key for e in entries}) != len(entries):
        raise ValueError(f"{where}: a metadata key appears twice (FWSS rejects duplicates)")
    return [{"key": e.key, "value": e.value} for e in entries]


@dataclass(frozen=True, slots=True)
class Domain:
    chain_id: int
    verifying_contract: str  # the FWSS proxy of that chain

    def __post_init__(self) -> None:
        _uint256("chainId", self.chain_id)
        object.__setattr__(
            self, "verifying_contract", _address("verifyingContract", self.verifying_contract)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@dataclass(frozen=True, slots=True)
class CreateDataSet:
    client_data_set_id: int
    payee: str  # the provider's payee address
    metadata: tuple[MetadataEntry, ...] = ()

    primary_type = "CreateDataSet"

    def __post_init__(self) -> None:
        _uint256("clientDataSetId", self.client_data_set_id)
        object.__setattr__(self, "payee", _address("payee", self.payee))
        self.message()  # validates metadata

    def message(self) -> dict[str, Any]:
        return {
            "clientDataSetId": self.client_data_set_id,
            "payee": self.payee,
            "metadata": _metadata(self.metadata, MAX_KEYS_PER_DATA_SET, "data set"),
        }


@dataclass(frozen=True, slots=True)
class AddPieces:
    client_data_set_id: int
    nonce: int
    pieces: tuple[bytes, ...]  # binary piece CIDs (v2)
    piece_metadata: tuple[tuple[MetadataEntry, ...], ...] = ()  # () = no metadata on any piece

    primary_type = "AddPieces"

    def __post_init__(self) -> None:
        _uint256("clientDataSetId", self.client_data_set_id)
        _uint256("nonce", self.nonce)
        if not 0 < len(self.pieces) <= MAX_PIECES_PER_ADD:
            raise ValueError(f"1..{MAX_PIECES_PER_ADD} pieces per AddPieces")
        if not all(isinstance(p, bytes) and p for p in self.pieces):
            raise ValueError("each piece is a non-empty binary CID")
        if not self.piece_metadata:
            object.__setattr__(self, "piece_metadata", ((),) * len(self.pieces))
        if len(self.piece_metadata) != len(self.pieces):
            raise ValueError("piece_metadata needs one entry tuple per piece")
        self.message()

    def message(self) -> dict[str, Any]:
        return {
            "clientDataSetId": self.client_data_set_id,
            "nonce": self.nonce,
            "pieceData": [{"data": piece} for piece in self.pieces],
            "pieceMetadata": [
                {"pieceIndex": i, "metadata": _metadata(entries, MAX_KEYS_PER_PIECE, f"piece {i}")}
                for i, entries in enumerate(self.piece_metadata)
            ],
        }


@dataclass(frozen=True, slots=True)
class SchedulePieceRemovals:
    client_data_set_id: int
    piece_ids: tuple[int, ...]

    primary_type = "SchedulePieceRemovals"

    def __post_init__(self) -> None:
        _uint256("clientDataSetId", self.client_data_set_id)
        if not self.piece_ids:
            raise ValueError("at least one piece id to remove")
        for piece_id in self.piece_ids:
            _uint256("pieceId", piece_id)

    def message(self) -> dict[str, Any]:
        return {"clientDataSetId": self.client_data_set_id, "pieceIds": list(self.piece_ids)}


@dataclass(frozen=True, slots=True)
class TerminateService:
    data_set_id: int  # the on-chain data set id (not the client's clientDataSetId)

    primary_type = "TerminateService"

    def __post_init__(self) -> None:
        _uint256("dataSetId", self.data_set_id)

    def message(self) -> dict[str, Any]:
        return {"dataSetId": self.data_set_id}


Message = CreateDataSet | AddPieces | SchedulePieceRemovals | TerminateService


class Signer(Protocol):
    """What signs: the wallet (``gateway.chain.wallet.Wallet``) or, later, a session key."""

    @property
    def address(self) -> str: ...

    def sign_typed_data(self, full_message: dict[str, Any]) -> bytes: ...


def typed_data(domain: Domain, message: Message) -> dict[str, Any]:
    """The ``eth_signTypedData_v4`` JSON object (what a wallet shows and signs)."""
    primary = message.primary_type
    types = {"EIP712Domain": _EIP712_DOMAIN, primary: TYPES[primary]}
    types.update({name: TYPES[name] for name in _REFERENCED[primary]})
    return {
        "types": types,
        "primaryType": primary,
        "domain": domain.to_json(),
        "message": message.message(),
    }


def type_hash(primary: str) -> bytes:
    """keccak256(encodeType): the value SessionKeyRegistry permissions are made of."""
    from gateway.chain.keccak import keccak256

    def render(name: str) -> str:
        return f"{name}({','.join(f['type'] + ' ' + f['name'] for f in TYPES[name])})"

    encoded = render(primary) + "".join(render(n) for n in sorted(_REFERENCED[primary]))
    return keccak256(encoded.encode())


def digest(domain: Domain, message: Message) -> bytes:
    """keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message)): what ECDSA signs."""
    from gateway.chain.keccak import keccak256
    from gateway.keys.ethlib import load_eth_account

    load_eth_account()
    from eth_account.messages import encode_typed_data

    # EIP-191 version 0x01: header = domain separator, body = struct hash.
    signable = encode_typed_data(full_message=typed_data(domain, message))
    return keccak256(b"\x19" + signable.version + signable.header + signable.body)


def sign(domain: Domain, message: Message, signer: Signer) -> bytes:
    """65-byte r ‖ s ‖ v signature (v = 27/28), the form FWSS's ECDSA recovery takes."""
    signature = signer.sign_typed_data(typed_data(domain, message))
    if len(signature) != 65:
        raise ValueError("an EIP-712 signature is 65 bytes")
    return signature
