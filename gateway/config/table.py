"""Validating TOML tables: typed getters whose errors name the key and suggest the fix.

Shared by the gateway config (``gateway/config.py``) and the storage node config
(``gateway/node/config.py``). Unknown keys are errors with a "did you mean" hint.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.config.checks import MAX_DURATION, MAX_SIZE, MQTT_MAX_STRING
from gateway.errors import ConfigError
from gateway.units import format_duration, format_size, parse_duration, parse_size

__all__ = ["Table", "parse_toml", "toml_string"]

T = TypeVar("T")


class Table:
    """One TOML table being validated: typed getters that name the key on error."""

    def __init__(self, prefix: str, data: Any, known: tuple[str, ...]) -> None:
        if not isinstance(data, dict):
            raise ConfigError(prefix, "must be a table", f"write it as [{prefix}]")
        self.prefix = prefix
        self.data: dict[str, Any] = data
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(known)
                raise ConfigError(self.key(key), "unknown key", hint)

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def _typed(self, name: str, default: T, kind: type | tuple[type, ...], what: str) -> T:
        value = self.data.get(name, default)
        if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
            raise ConfigError(self.key(name), f"expected {what}, got a boolean", f"give {what}")
        if not isinstance(value, kind):
            got = type(value).__name__
            raise ConfigError(self.key(name), f"expected {what}, got {got}", f"give {what}")
        return value  # type: ignore[return-value]

    def string(self, name: str, default: str, max_bytes: int = MQTT_MAX_STRING) -> str:
        value = self._typed(name, default, str, "a string")
        if "\0" in value:
            raise ConfigError(self.key(name), "contains a NUL character", "remove it")
        if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
            raise ConfigError(self.key(name), "is too long", f"use at most {max_bytes} bytes")
        return value

    def optional_string(self, name: str, max_bytes: int = MQTT_MAX_STRING) -> str | None:
        if name not in self.data:
            return None
        return self.string(name, "", max_bytes)

    def boolean(self, name: str, default: bool) -> bool:
        return self._typed(name, default, bool, "true or false")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self._typed(name, default, int, "an integer")
        if not low <= value <= high:
            raise ConfigError(
                self.key(name), f"{_show(value)} is out of range", f"use {low}..{high}"
            )
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = float(self._typed(name, default, (int, float), "a number"))
        # NaN fails every comparison, so this also rejects it (and the infinities).
        if not low <= value <= high:
            raise ConfigError(
                self.key(name), f"{_show(value)} is out of range", f"use a number in {low}..{high}"
            )
        return value

    def _parsed(self, name: str, default: Any, parse: Callable[[Any], T], example: str) -> T:
        try:
            return parse(self.data.get(name, default))
        except (ValueError, TypeError) as exc:
            raise ConfigError(self.key(name), str(exc), f"for example {name} = {example}") from None

    def duration(
        self, name: str, default: str, minimum: float = 0.0, maximum: float = MAX_DURATION
    ) -> float:
        """Seconds, finite and within ``minimum..maximum`` (both inclusive)."""
        value = self._parsed(name, default, parse_duration, f'"{default}"')
        if not minimum <= value <= maximum:
            raise ConfigError(
                self.key(name),
                f"{format_duration(value)} is out of range",
                f"use {format_duration(minimum)}..{format_duration(maximum)},"
                f" {_seconds(minimum)}..{_seconds(maximum)} seconds",
            )
        return value

    def size(self, name: str, default: str | int, minimum: int = 0, maximum: int = MAX_SIZE) -> int:
        """Bytes within ``minimum..maximum`` (both inclusive)."""
        value = self._parsed(name, default, parse_size, _size_example(default))
        if not minimum <= value <= maximum:
            raise ConfigError(
                self.key(name),
                f"{_show(value)} bytes is out of range",
                f"use {format_size(minimum)}..{format_size(maximum)} ({minimum}..{maximum} bytes)",
            )
        return value

    def strings(
        self, name: str, default: tuple[str, ...], max_items: int = 1024
    ) -> tuple[str, ...]:
        value = self.data.get(name, list(default))
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(self.key(name), "expected a list of strings", 'e.g. ["a", "b"]')
        if len(value) > max_items:
            raise ConfigError(
                self.key(name), f"has {len(value)} entries", f"use at most {max_items}"
            )
        for index, item in enumerate(value):
            if "\0" in item or len(item) > MQTT_MAX_STRING:
                raise ConfigError(f"{self.key(name)}[{index}]", "has a NUL or is too long",
                                  f"use at most {MQTT_MAX_STRING} characters, no NUL")  # fmt: skip
        return tuple(value)

    def table(self, name: str, known: tuple[str, ...]) -> Table:
        return Table(self.key(name), self.data.get(name, {}), known)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _size_example(default: str | int) -> str:
    return f'"{default}"' if isinstance(default, str) else str(default)


def _show(value: object) -> str:
    """A value for a one-line message: repr, cut short (a 4,000-digit number is noise)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:20] + "..." + text[-8:]


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string, for the configs ``init`` writes. JSON's escapes are all
    valid TOML, except that TOML also forbids a raw DEL, and non-ASCII stays readable."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def parse_toml(text: str) -> dict[str, Any]:
    """TOML text as a dict, or a ConfigError pointing at the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            "", f"not valid TOML: {exc}", "check quotes and brackets on that line"
        ) from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError("", "arrays or tables are nested too deeply", "flatten them") from None
    except ValueError as exc:  # tomllib lets int()'s 4,300-digit limit through untranslated
        raise ConfigError("", f"not a usable TOML value: {exc}", "use a smaller number") from None
