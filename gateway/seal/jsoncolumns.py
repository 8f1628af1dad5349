"""A list of documents (payloads; ``None`` for absent) <-> columns, byte-exact.

Each document is split by ``jsontemplate`` into a template and values. A template used by two or
more documents of the list is interned; its values become one column per value position. All
other documents (binary frames, plain text, one-off shapes, anything exotic) are kept raw. Every
row carries a *stream* (the reading's topic): numbers delta-encode against the previous row of
the same template and stream, so a sequence field becomes a run of ones and a sensor's
temperature a run of small steps, however the sensors interleave.

The section, as canonical CBOR::

    {"shape": packed,                 per row: 0 absent, 1 raw, 2 + t template t, as repeat
                                      codes per stream (0 = same shape as the stream's last row)
     "templates": [[kinds, [piece, ...]], ...],    see jsontemplate.Template
     "columns": [[column, ...], ...], per template, one per value position, rows in order:
        number:  [scale, [[frac, minus_zero, exponent], ...], packed form index, mode, packed]
                 values are mantissa * 10**(scale - frac), plain or per-stream deltas
        string:  [[body, ...], packed repeat codes per stream]   (bodies in first-seen order)
        literal: bytes                                           (0 false, 1 true, 2 null)
     "raw_len": packed,               lengths of the raw documents, in row order
     "raw": bytes}                    raw documents grouped by (stream, length), first-seen
                                      order; each group's documents byte-transposed (all first
                                      bytes, then all second bytes, ...) so fixed binary frames
                                      line up
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

from gateway.seal.columns import (
    CodecError,
    pack_numbers,
    pack_uints,
    repeat_codes,
    unpack_numbers,
    unpack_uints,
    unrepeat_codes,
)
from gateway.seal.jsontemplate import (
    KIND_LITERAL,
    KIND_NUMBER,
    MAX_FRAC,
    Number,
    Template,
    Value,
    join,
    split,
)

__all__ = ["decode_documents", "encode_documents"]

_ABSENT, _RAW, _FIRST_TEMPLATE = 0, 1, 2


def _transpose(chunks: list[bytes], length: int) -> bytes:
    flat = b"".join(chunks)
    return (
        flat
        if length <= 1 or len(chunks) <= 1
        else b"".join(flat[i::length] for i in range(length))
    )


def _untranspose(data: bytes, count: int, length: int) -> list[bytes]:
    if length > 1 and count > 1:
        flat = bytearray(len(data))
        for i in range(length):
            flat[i::length] = data[i * count : (i + 1) * count]
        data = bytes(flat)
    return [data[i * length : (i + 1) * length] for i in range(count)]


def _encode_raw(raw: list[tuple[bytes, Hashable]]) -> tuple[bytes, bytes]:
    groups: dict[tuple[Hashable, int], list[bytes]] = {}
    for doc, stream in raw:
        groups.setdefault((stream, len(doc)), []).append(doc)
    blob = b"".join(_transpose(docs, length) for (_, length), docs in groups.items())
    return pack_uints([len(doc) for doc, _ in raw]), blob


def _decode_raw(lengths: list[int], streams: list[Hashable], blob: bytes) -> list[bytes]:
    groups: dict[tuple[Hashable, int], int] = {}
    for stream, length in zip(streams, lengths, strict=True):
        key = (stream, length)
        groups[key] = groups.get(key, 0) + 1
    if sum(length * count for (_, length), count in groups.items()) != len(blob):
        raise CodecError("raw document lengths do not add up to the raw column")
    members: dict[tuple[Hashable, int], list[bytes]] = {}
    offset = 0
    for (stream, length), count in groups.items():
        size = length * count
        members[stream, length] = _untranspose(blob[offset : offset + size], count, length)[::-1]
        offset += size
    return [members[stream, length].pop() for stream, length in zip(streams, lengths, strict=True)]


def _encode_column(kind: int, values: list[Value], streams: list[Hashable]) -> Any:
    if kind == KIND_LITERAL:
        return bytes(v for v in values if isinstance(v, int))
    if kind == KIND_NUMBER:
        numbers = [v for v in values if isinstance(v, Number)]
        scale = max(n.frac for n in numbers)
        forms: dict[tuple[int, bool, bytes], int] = {}
        form_index = [
            forms.setdefault((n.frac, n.minus_zero, n.exponent), len(forms)) for n in numbers
        ]
        scaled = [n.mantissa * 10 ** (scale - n.frac) for n in numbers]
        mode, packed = pack_numbers(scaled, streams)
        return [scale, [list(f) for f in forms], pack_uints(form_index), mode, packed]
    table: dict[bytes, int] = {}
    indexes = [table.setdefault(v, len(table)) for v in values if isinstance(v, bytes)]
    return [list(table), pack_uints(repeat_codes(indexes, streams))]


def _decode_column(kind: int, column: Any, streams: list[Hashable]) -> list[Value]:
    count = len(streams)
    if kind == KIND_LITERAL:
        if not isinstance(column, bytes) or len(column) != count or any(b > 2 for b in column):
            raise CodecError("literal column is malformed")
        return list(column)
    if kind == KIND_NUMBER:
        scale, forms, form_index, mode, packed = column
        if not isinstance(scale, int) or not 0 <= scale <= MAX_FRAC:
            raise CodecError("number column scale is out of range")
        decoded_forms = [Number(0, frac, False, exponent) for frac, _, exponent in forms]
        minus = [bool(m) for _, m, _ in forms]
        out: list[Value] = []
        for value, index in zip(
            unpack_numbers(mode, packed, streams), unpack_uints(form_index, count), strict=True
        ):
            form = decoded_forms[index]
            mantissa, rest = divmod(value, 10 ** (scale - form.frac))
            if rest or form.frac > scale:
                raise CodecError("number column value does not fit its form")
            out.append(Number(mantissa, form.frac, minus[index], form.exponent))
        return out
    table, codes = column
    if not all(isinstance(body, bytes) for body in table):
        raise CodecError("string column table holds a non-bytes value")
    return [table[i] for i in unrepeat_codes(unpack_uints(codes, count), streams)]


def encode_documents(docs: Sequence[bytes | None], streams: Sequence[Hashable]) -> dict[str, Any]:
    """The column section for ``docs`` (``streams`` gives each row's stream)."""
    # One Template object per shape, not one per document: 10,000 copies of the same pieces
    # were a few MB of the seal worker's peak. Equal templates, so the output is unchanged.
    canonical: dict[Template, Template] = {}
    split_docs: list[tuple[Template, list[Value]] | None] = []
    for doc in docs:
        parts = None if doc is None else split(doc)
        if parts is not None:
            parts = (canonical.setdefault(parts[0], parts[0]), parts[1])
        split_docs.append(parts)
    uses = Counter(parts[0] for parts in split_docs if parts is not None)
    templates: dict[Template, int] = {}
    shapes: list[int] = []
    raw: list[tuple[bytes, Hashable]] = []
    rows: list[list[tuple[list[Value], Hashable]]] = []
    for doc, parts, stream in zip(docs, split_docs, streams, strict=True):
        if doc is None:
            shapes.append(_ABSENT)
        elif parts is None or uses[parts[0]] < 2:
            shapes.append(_RAW)
            raw.append((doc, stream))
        else:
            index = templates.setdefault(parts[0], len(templates))
            if index == len(rows):
                rows.append([])
            rows[index].append((parts[1], stream))
            shapes.append(_FIRST_TEMPLATE + index)
    columns = []
    for template, members in zip(templates, rows, strict=True):
        member_streams = [stream for _, stream in members]
        columns.append(
            [
                _encode_column(kind, [values[i] for values, _ in members], member_streams)
                for i, kind in enumerate(template.kinds)
            ]
        )
    raw_len, raw_blob = _encode_raw(raw)
    return {
        "shape": pack_uints(repeat_codes(shapes, streams)),
        "templates": [[t.kinds, list(t.pieces)] for t in templates],
        "columns": columns,
        "raw_len": raw_len,
        "raw": raw_blob,
    }


def decode_documents(section: Any, streams: Sequence[Hashable]) -> list[bytes | None]:
    """Inverse of ``encode_documents``; malformations raise ``CodecError``."""
    if not isinstance(section, dict):
        raise CodecError("document section is not a map")
    try:
        return _decode(section, list(streams))
    except CodecError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
        raise CodecError(f"document section is malformed: {exc!r}") from exc


def _decode(section: dict[str, Any], streams: list[Hashable]) -> list[bytes | None]:
    count = len(streams)
    shapes = unrepeat_codes(unpack_uints(section["shape"], count), streams)
    templates = [Template(tuple(pieces), kinds) for kinds, pieces in section["templates"]]
    columns = section["columns"]
    if len(columns) != len(templates) or max(shapes, default=0) >= _FIRST_TEMPLATE + len(templates):
        raise CodecError("document shapes point outside the template table")
    docs: list[bytes | None] = [None] * count
    raw_rows = [i for i, shape in enumerate(shapes) if shape == _RAW]
    raw_lengths = unpack_uints(section["raw_len"], len(raw_rows))
    raw_streams = [streams[i] for i in raw_rows]
    blob = section["raw"]
    if not isinstance(blob, bytes):
        raise CodecError("raw column is not bytes")
    for i, doc in zip(raw_rows, _decode_raw(raw_lengths, raw_streams, blob), strict=True):
        docs[i] = doc
    members: list[list[int]] = [[] for _ in templates]
    for i, shape in enumerate(shapes):
        if shape >= _FIRST_TEMPLATE:
            members[shape - _FIRST_TEMPLATE].append(i)
    for index, (template, template_columns, rows) in enumerate(
        zip(templates, columns, members, strict=True)
    ):
        if not rows or len(template_columns) != len(template.kinds):
            raise CodecError(f"template {index} is unused or has the wrong number of columns")
        row_streams = [streams[i] for i in rows]
        values = [
            _decode_column(kind, column, row_streams)
            for kind, column in zip(template.kinds, template_columns, strict=True)
        ]
        for position, i in enumerate(rows):
            docs[i] = join(template, [column[position] for column in values])
    return docs
