"""The ledger snapshot stored on the network (pure): a CAR v1 of DAG-CBOR blocks.

Root block (``depin-ledger-snapshot`` version 1)::

    {"v": 1, "kind": "depin-ledger-snapshot",
     "gateway": "ed25519:<hex>",              the key that signs the batch headers
     "n": snapshot number (increasing), "prev": piece CID of the previous snapshot or null,
     "batches": [{"seq": int, "header": link to the signed header block,
                  "fragments": [{"piece": piece CID v2, "nodes": [node URL, ...]}, ...],
                  "dict": dictionary object id or null}, ...],        ascending seq
     "dictionaries": {id: {"piece": piece CID v2, "nodes": [node URL, ...]}}}

followed by one block per signed batch header (the exact blocks the vault stores, so their CIDs
are the chain's links). The whole CAR is stored as a piece like a fragment; its piece CID v2 is
the ``ledger_head``: whoever fetches it checks the commP, then each block's CID, then the header
chain and signatures (``verify_chain``). The root block is padded with a ``pad`` field when
needed so the object is at least 127 bytes (the smallest fragment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.errors import InputError, IntegrityError
from gateway.piece.car import Block, decode_car, encode_car
from gateway.piece.cid import Cid
from gateway.piece.dagcbor import DagCbor, cid_for_dag_cbor, dag_cbor_decode, dag_cbor_encode
from gateway.seal.signed import SignedHeader

__all__ = ["BatchRecord", "LedgerSnapshot", "decode_snapshot", "encode_snapshot"]

KIND = "depin-ledger-snapshot"
VERSION = 1
MIN_OBJECT = 127


@dataclass(frozen=True, slots=True)
class BatchRecord:
    seq: int
    header_block: bytes
    fragments: tuple[tuple[str, tuple[str, ...]], ...]  # (piece CID, node URLs) per index
    dictionary: str | None


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    gateway: str
    n: int
    prev: str | None
    batches: tuple[BatchRecord, ...]
    dictionaries: Mapping[str, tuple[str, tuple[str, ...]]]  # id -> (piece CID, node URLs)

    def headers(self) -> list[SignedHeader]:
        return [SignedHeader.from_block(b.header_block, b.seq) for b in self.batches]


def _where(piece: str, nodes: Sequence[str]) -> dict[str, DagCbor]:
    return {"piece": piece, "nodes": list(nodes)}


def encode_snapshot(snapshot: LedgerSnapshot) -> bytes:
    blocks = [Block(cid_for_dag_cbor(b.header_block), b.header_block) for b in snapshot.batches]
    root: dict[str, DagCbor] = {
        "v": VERSION,
        "kind": KIND,
        "gateway": snapshot.gateway,
        "n": snapshot.n,
        "prev": snapshot.prev,
        "batches": [
            {
                "seq": b.seq,
                "header": block.cid,
                "fragments": [_where(piece, nodes) for piece, nodes in b.fragments],
                "dict": b.dictionary,
            }
            for b, block in zip(snapshot.batches, blocks, strict=True)
        ],
        "dictionaries": {k: _where(p, n) for k, (p, n) in snapshot.dictionaries.items()},
    }
    data = dag_cbor_encode(root)
    if len(data) < MIN_OBJECT:
        root["pad"] = bytes(MIN_OBJECT)
        data = dag_cbor_encode(root)
    root_block = Block(cid_for_dag_cbor(data), data)
    return encode_car([root_block.cid], [root_block, *blocks])


def _fail(reason: str) -> IntegrityError:
    return IntegrityError("ledger", "snapshot", reason)


def _locations(value: object) -> tuple[str, tuple[str, ...]]:
    if not isinstance(value, dict) or not isinstance(value.get("piece"), str):
        raise _fail("a location lacks its piece CID")
    nodes = value.get("nodes")
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        raise _fail("a location's nodes are not a list of URLs")
    return value["piece"], tuple(nodes)


def decode_snapshot(data: bytes) -> LedgerSnapshot:
    """Parse and hash-check a snapshot CAR; anything wrong is ``IntegrityError``."""
    try:
        car = decode_car(data)
    except InputError as exc:
        raise _fail(f"not a CAR v1: {exc.reason}") from None
    blocks: dict[Cid, bytes] = {b.cid: b.data for b in car.blocks}
    if len(car.roots) != 1 or car.roots[0] not in blocks:
        raise _fail("the CAR must have one root, present as a block")
    try:
        root = dag_cbor_decode(blocks[car.roots[0]])
    except InputError as exc:
        raise _fail(f"root block: {exc.reason}") from None
    if not isinstance(root, dict) or root.get("kind") != KIND or root.get("v") != VERSION:
        raise _fail(f"root is not a {KIND} version {VERSION}")
    batches_raw, dicts_raw = root.get("batches"), root.get("dictionaries")
    if not isinstance(batches_raw, list) or not isinstance(dicts_raw, dict):
        raise _fail("batches or dictionaries missing")
    batches = []
    for item in batches_raw:
        if not isinstance(item, dict) or not isinstance(item.get("seq"), int):
            raise _fail("a batch entry lacks its seq")
        link = item.get("header")
        if not isinstance(link, Cid) or link not in blocks:
            raise _fail(f"batch {item['seq']}: header block missing")
        fragments = item.get("fragments")
        if not isinstance(fragments, list):
            raise _fail(f"batch {item['seq']}: fragments missing")
        dictionary = item.get("dict")
        if dictionary is not None and not isinstance(dictionary, str):
            raise _fail(f"batch {item['seq']}: bad dictionary id")
        batches.append(
            BatchRecord(
                item["seq"], blocks[link], tuple(_locations(f) for f in fragments), dictionary
            )
        )
    gateway, n, prev = root.get("gateway"), root.get("n"), root.get("prev")
    if not isinstance(gateway, str) or not isinstance(n, int):
        raise _fail("gateway or n missing")
    if prev is not None and not isinstance(prev, str):
        raise _fail("prev must be a piece CID or null")
    return LedgerSnapshot(
        gateway, n, prev, tuple(batches), {str(k): _locations(v) for k, v in dicts_raw.items()}
    )
