"""What one exported row holds, and the per-source column schema inferred from the readings.

Pure (no pyarrow, no I/O). An ``Item`` is a reading with the sealed batch it came from (or none:
still in the spool) and its index in that batch. ``SchemaBuilder`` sees every item once and
infers, per source, the typed value columns (``json.*`` for JSON payloads, ``value.*`` for
driver readings, with units) that ``gateway.dataset.parquet`` writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.dataset.flatten import Kinds, escape, flatten, parse_json
from gateway.reading import Reading

__all__ = [
    "BatchRef",
    "Column",
    "Item",
    "SchemaBuilder",
    "SourceSchema",
    "day_of",
    "flag_duplicates",
    "topic_pattern",
    "value_leaves",
]


@dataclass(frozen=True, slots=True)
class BatchRef:
    """The sealed batch a reading is in: sequence number, header CID text, reading count."""

    seq: int
    cid: str
    count: int


@dataclass(frozen=True, slots=True)
class Item:
    reading: Reading
    batch: BatchRef | None
    index: int | None  # position in the batch (the codec's order), None for spool readings
    duplicate: bool = False  # restore skips it (a redelivery with an id: key already seen)


@dataclass(frozen=True, slots=True)
class Column:
    """A typed value column: name, kind (see flatten), unit, and the topic patterns it is from."""

    name: str
    kind: str
    unit: str | None = None
    topics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceSchema:
    source: str
    columns: tuple[Column, ...]
    topics: tuple[str, ...]
    dropped_leaves: int = 0  # leaves past flatten.MAX_COLUMNS (kept in the payload column only)

    def kinds(self) -> dict[str, str]:
        return {c.name: c.kind for c in self.columns}


def day_of(reading: Reading) -> str:
    """The UTC day of the receive time, YYYY-MM-DD (files are split by it)."""
    return reading.time.iso()[:10]


def _matches(pattern: str, topic: str) -> bool:
    want, have = pattern.split("/"), topic.split("/")
    for i, part in enumerate(want):
        if part == "#":
            return True
        if i >= len(have) or (part not in ("+", have[i])):
            return False
    return len(want) == len(have)


def topic_pattern(reading: Reading, filters: Iterable[str]) -> str:
    """The config's MQTT filter the topic matched (its schema group); serial: the source."""
    if reading.source != "mqtt":
        return reading.source
    for pattern in filters:
        if _matches(pattern, reading.topic):
            return pattern
    return reading.topic


def _driver_values(decoded: str) -> dict[str, tuple[Any, str | None]] | None:
    """A driver's decoded view {name: {"value", "unit"}} as {name: (value, unit)}, else None."""
    try:
        obj = json.loads(decoded)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    out: dict[str, tuple[Any, str | None]] = {}
    for name, entry in obj.items():
        if not isinstance(entry, dict) or "value" not in entry:
            return None
        unit = entry.get("unit")
        out[name] = (entry["value"], unit if isinstance(unit, str) else None)
    return out


def value_leaves(reading: Reading) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed-column leaves of a reading and the units of those that have one."""
    if reading.decoded is not None:
        values = _driver_values(reading.decoded)
        if values is not None:
            leaves = {f"value.{k}": v for k, (v, _) in _escaped(values).items()}
            units = {f"value.{k}": u for k, (_, u) in _escaped(values).items() if u}
            return leaves, units
        view = parse_json(reading.decoded.encode("utf-8", "surrogatepass"))
        # Not a driver's {name: {value, unit}} map: flattened under "view." (never "decoded",
        # which is the fixed column holding the text itself).
        return ({} if view is None else flatten(view, "view")), {}
    document = parse_json(reading.payload)
    if document is None:
        return {}, {}
    return flatten(document, "json"), {}


def _escaped(values: Mapping[str, Any]) -> dict[str, Any]:
    return {escape(k): v for k, v in values.items()}


@dataclass
class _Acc:
    kinds: Kinds = field(default_factory=Kinds)
    units: dict[str, str] = field(default_factory=dict)
    topics: dict[str, dict[str, None]] = field(default_factory=dict)
    all_topics: dict[str, None] = field(default_factory=dict)


class SchemaBuilder:
    """Pass one of an export: the columns of every source, from the readings themselves."""

    def __init__(self, filters: Iterable[str] = ()) -> None:
        self.filters = tuple(filters)
        self._by_source: dict[str, _Acc] = {}

    def add(self, reading: Reading) -> None:
        acc = self._by_source.setdefault(reading.source, _Acc())
        pattern = topic_pattern(reading, self.filters)
        acc.all_topics.setdefault(pattern)
        leaves, units = value_leaves(reading)
        acc.kinds.add(leaves)
        for name in leaves:
            acc.topics.setdefault(name, {}).setdefault(pattern)
        for name, unit in units.items():
            acc.units.setdefault(name, unit)

    def build(self) -> dict[str, SourceSchema]:
        out: dict[str, SourceSchema] = {}
        for source, acc in sorted(self._by_source.items()):
            columns = tuple(
                Column(name, kind, acc.units.get(name), tuple(acc.topics.get(name, {})))
                for name, kind in acc.kinds.final().items()
            )
            out[source] = SourceSchema(source, columns, tuple(acc.all_topics), acc.kinds.dropped)
        return out


def flag_duplicates(items: Iterable[Item]) -> Iterator[Item]:
    """Mark the redeliveries ``restore`` skips (same rule as gateway.restore.dedup_readings)."""
    seen: set[str] = set()
    for item in items:
        key = item.reading.key
        if key is not None and key.startswith("id:"):
            if key in seen:
                yield Item(item.reading, item.batch, item.index, duplicate=True)
                continue
            seen.add(key)
        yield item
