"""JSON payloads as typed columns: flatten nested objects to dotted names, infer one type each.

Pure (no pyarrow). ``flatten(obj, prefix)`` maps a decoded JSON value to leaves
``{column: scalar}``: objects recurse (keys joined with ``.``, a literal ``.`` or ``\\`` inside a
key escaped with ``\\`` so the mapping is one to one), anything else is a leaf. ``Kinds`` merges
the leaves of many readings into one type per column:

    bool -> "bool", int in int64 -> "int64", float -> "float64", str -> "string",
    int + float -> "float64" (only while every int is exact in a double, |n| <= 2**53),
    lists, empty objects, and columns whose values disagree on a type -> "json" (JSON text).

``cell(kind, value)`` is the value stored in a column of that kind; ``uncell`` reverses it, so
a scalar leaf survives the trip (what the hypothesis test pins).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["MAX_COLUMNS", "Kinds", "cell", "escape", "flatten", "parse_json", "uncell", "unflatten"]

MAX_COLUMNS = 256  # per source: a payload with random keys must not make a table of thousands
MAX_DEPTH = 32  # deeper objects stay one JSON-text leaf (the payload column keeps every byte)
_INT64 = 2**63
_EXACT = 2**53
Scalar = bool | int | float | str | None


def escape(key: str) -> str:
    return key.replace("\\", "\\\\").replace(".", "\\.")


def _split(name: str) -> Iterator[str]:
    part: list[str] = []
    chars = iter(name)
    for char in chars:
        if char == "\\":
            part.append(next(chars, ""))
        elif char == ".":
            yield "".join(part)
            part = []
        else:
            part.append(char)
    yield "".join(part)


def parse_json(data: bytes) -> Any:
    """The payload as JSON, or None if it is not (bad UTF-8, syntax, nesting or huge numbers)."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def flatten(value: Any, prefix: str, depth: int = 0) -> dict[str, Any]:
    """Leaves of ``value`` under ``prefix`` (see the module docstring)."""
    if isinstance(value, dict) and value and depth < MAX_DEPTH:
        leaves: dict[str, Any] = {}
        for key, child in value.items():
            leaves.update(flatten(child, f"{prefix}.{escape(str(key))}", depth + 1))
        return leaves
    return {prefix: value}


def unflatten(leaves: Mapping[str, Any], prefix: str) -> Any:
    """Inverse of ``flatten`` (for tests and for readers who want the document back)."""
    if list(leaves) == [prefix]:
        return leaves[prefix]
    root: dict[str, Any] = {}
    for name, value in leaves.items():
        parts = list(_split(name))[1:]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return root


def _kind_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64" if -_INT64 <= value < _INT64 else "json"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \\ud800 escape: not Arrow text
            return "json"
        return "string"
    return "json"


class Kinds:
    """The running type of every column seen so far (and the big ints a float column holds)."""

    def __init__(self) -> None:
        self.kinds: dict[str, str | None] = {}
        self._inexact: set[str] = set()
        self.dropped = 0

    def add(self, leaves: Mapping[str, Any]) -> None:
        for name, value in leaves.items():
            if name not in self.kinds and len(self.kinds) >= MAX_COLUMNS:
                self.dropped += 1
                continue
            self._merge(name, value)

    def _merge(self, name: str, value: Any) -> None:
        new = _kind_of(value)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _EXACT:
            self._inexact.add(name)
        old = self.kinds.get(name)
        if old is None or new is None or old == new:
            self.kinds[name] = old if new is None else new
        elif {old, new} == {"int64", "float64"} and name not in self._inexact:
            self.kinds[name] = "float64"
        else:
            self.kinds[name] = "json"
        if self.kinds[name] == "float64" and name in self._inexact:
            self.kinds[name] = "json"

    def final(self) -> dict[str, str]:
        """Every column's type; a column that only ever held null is text."""
        return {name: kind or "string" for name, kind in self.kinds.items()}


def cell(kind: str, value: Any) -> Scalar:
    """``value`` as stored in a column of ``kind`` (None stays None)."""
    if value is None:
        return None
    if kind == "json":
        return json.dumps(value, ensure_ascii=True, allow_nan=True, separators=(",", ":"))
    if kind == "float64":
        return float(value)
    result: Scalar = value
    return result


def uncell(kind: str, stored: Scalar) -> Any:
    """Inverse of ``cell`` (a float column gives back floats: 3 and 3.0 are the same number)."""
    if stored is None or kind != "json":
        return stored
    return json.loads(str(stored))


def same_value(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to itself (JSON payloads may say NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)
