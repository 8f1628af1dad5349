"""CAR v1 (IPLD Content Addressable aRchive): reader and writer.

Layout: ``varint(len) | DAG-CBOR header {"roots": [CID...], "version": 1}`` then sections
``varint(len) | CID bytes | block bytes`` to the end. CIDv0 (dag-pb) and CIDv1 blocks both occur.
The writer emits exactly the bytes the reader parsed, so a canonical CAR round-trips byte for byte.

``CarReader`` reads from any binary stream, one section at a time (bounded memory); ``decode_car``
and ``encode_car`` are the in-memory forms. Malformed input raises ``InputError`` (source ``car``).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from gateway.errors import InputError
from gateway.piece.cid import IDENTITY, SHA2_256, Cid, decode_uvarint, encode_uvarint
from gateway.piece.dagcbor import dag_cbor_decode, dag_cbor_encode

__all__ = [
    "Block",
    "CarFile",
    "CarReader",
    "decode_car",
    "encode_car",
    "encode_car_header",
    "write_car",
]

MAX_SECTION: Final = 16 << 20  # larger than any IPFS block (bitswap caps them at 2 MiB)


def _error(reason: str) -> InputError:
    return InputError("car", reason)


@dataclass(frozen=True, slots=True)
class Block:
    """One CAR section: a CID and the block bytes it names."""

    cid: Cid
    data: bytes

    def verify(self) -> None:
        """Raise ``InputError`` unless the data hashes to the CID (sha2-256 and identity only)."""
        if self.cid.hash_code == SHA2_256:
            ok = hashlib.sha256(self.data).digest() == self.cid.digest
        elif self.cid.hash_code == IDENTITY:
            ok = self.data == self.cid.digest
        else:
            return  # a hash we do not implement: nothing to check
        if not ok:
            raise _error(f"block {self.cid} does not match its CID")


@dataclass(frozen=True, slots=True)
class CarFile:
    """A whole CAR in memory: roots and blocks in file order."""

    roots: tuple[Cid, ...]
    blocks: tuple[Block, ...]


def encode_car_header(roots: Iterable[Cid]) -> bytes:
    """The length-prefixed CAR v1 header."""
    header = dag_cbor_encode({"roots": list(roots), "version": 1})
    return encode_uvarint(len(header)) + header


def _section(block: Block) -> bytes:
    cid = block.cid.to_bytes()
    return encode_uvarint(len(cid) + len(block.data)) + cid + block.data


def write_car(stream: BinaryIO, roots: Iterable[Cid], blocks: Iterable[Block]) -> int:
    """Write a CAR v1 to ``stream``; returns the number of bytes written."""
    written = stream.write(encode_car_header(roots))
    for block in blocks:
        written += stream.write(_section(block))
    return written


def encode_car(roots: Iterable[Cid], blocks: Iterable[Block]) -> bytes:
    """A CAR v1 as bytes."""
    out = io.BytesIO()
    write_car(out, roots, blocks)
    return out.getvalue()


class CarReader:
    """Reads a CAR v1 from a binary stream: ``roots`` at once, then blocks by iteration."""

    def __init__(
        self, stream: BinaryIO, *, verify: bool = True, max_section: int = MAX_SECTION
    ) -> None:
        self._stream = stream
        self._verify = verify
        self._max_section = max_section
        self._offset = 0
        header_bytes = self._read_frame("header")
        if header_bytes is None:
            raise _error("empty file: no CAR header")
        header = dag_cbor_decode(header_bytes)
        if not isinstance(header, dict) or "version" not in header:
            raise _error("header is not a map with a version")
        if header["version"] != 1:
            raise _error(f"unsupported CAR version {header['version']!r} (only v1)")
        roots = header.get("roots")
        if set(header) != {"roots", "version"} or not isinstance(roots, list):
            raise _error("header must hold exactly 'roots' (a list) and 'version'")
        if not all(isinstance(root, Cid) for root in roots):
            raise _error("header roots must all be CIDs")
        self.roots: tuple[Cid, ...] = tuple(root for root in roots if isinstance(root, Cid))

    def _read_exact(self, count: int, what: str) -> bytes:
        data = self._stream.read(count)
        if len(data) != count:
            raise _error(
                f"truncated {what} at byte {self._offset}: {count} bytes declared, {len(data)} left"
            )
        self._offset += count
        return data

    def _read_frame(self, what: str) -> bytes | None:
        """Read ``varint(len) | payload``; None at a clean end of file."""
        start = self._offset
        prefix = bytearray()
        while True:
            byte = self._stream.read(1)
            if not byte:
                if prefix:
                    raise _error(f"truncated {what} length at byte {start}")
                return None
            prefix += byte
            self._offset += 1
            if not byte[0] & 0x80:
                break
            if len(prefix) >= 9:
                raise _error(f"{what} length varint too long at byte {start}")
        length, _ = decode_uvarint(bytes(prefix))
        if length == 0:
            raise _error(f"empty {what} at byte {start}")
        if length > self._max_section:
            raise _error(f"{what} at byte {start} is {length} bytes, over {self._max_section}")
        return self._read_exact(length, what)

    def __iter__(self) -> Iterator[Block]:
        while True:
            start = self._offset
            section = self._read_frame("section")
            if section is None:
                return
            try:
                cid, end = Cid.read(section)
            except InputError as exc:
                raise _error(f"section at byte {start}: {exc.reason}") from exc
            block = Block(cid, section[end:])
            if self._verify:
                block.verify()
            yield block


def decode_car(data: bytes, *, verify: bool = True) -> CarFile:
    """Parse a whole CAR v1 held in memory."""
    reader = CarReader(io.BytesIO(data), verify=verify, max_section=max(MAX_SECTION, len(data)))
    return CarFile(reader.roots, tuple(reader))
