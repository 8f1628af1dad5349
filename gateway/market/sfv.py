"""The two RFC 8941 structured fields of RFC 9421 signatures, parsed (pure).

``Signature-Input`` is a Dictionary of Inner Lists of strings with parameters, ``Signature`` a
Dictionary of Byte Sequences. ``SignatureInput.serialized`` is the canonical serialisation of a
member's value (RFC 8941 section 4.1), which is what the signature base's ``@signature-params``
line holds (RFC 9421 section 2.3), whatever optional whitespace the header had.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SignatureInput", "Token", "parse_signature_inputs", "parse_signatures"]


class Token(str):
    """An sf-token (serialised bare), as opposed to an sf-string (serialised quoted)."""

    __slots__ = ()


Param = str | int | bool
_KEY = re.compile(r"[a-z*][a-z0-9_.*-]*")
_INT = re.compile(r"-?[0-9]{1,15}")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+.^_`|~-]*")
_MAX_HEADER = 8192


@dataclass(frozen=True, slots=True)
class SignatureInput:
    label: str
    components: tuple[str, ...]
    params: dict[str, Param]
    serialized: str


class _Reader:
    def __init__(self, text: str) -> None:
        if len(text) > _MAX_HEADER:
            raise ValueError("header too long")
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected {char!r} at {self.pos}")
        self.pos += 1

    def match(self, pattern: re.Pattern[str]) -> str:
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise ValueError(f"unexpected text at {self.pos}")
        self.pos = found.end()
        return found.group()

    def string(self) -> str:
        self.expect('"')
        out: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise ValueError("unterminated string")
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                char = self.peek()
                if char not in ('"', "\\"):
                    raise ValueError("bad escape in string")
                self.pos += 1
            elif not " " <= char <= "~":
                raise ValueError("non-ASCII character in string")
            out.append(char)

    def bare_item(self) -> Param:
        char = self.peek()
        if char == '"':
            return self.string()
        if char == "?":
            self.pos += 1
            return self.match(re.compile(r"[01]")) == "1"
        if char == "-" or char.isdigit():
            return int(self.match(_INT))
        return Token(self.match(_TOKEN))

    def params(self) -> dict[str, Param]:
        found: dict[str, Param] = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip_spaces()
            key = self.match(_KEY)
            value: Param = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            found[key] = value
        return found


def _serialize(value: Param) -> str:
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Token):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dictionary(text: str, value: Callable[[_Reader, str], None]) -> None:
    """Walk a Dictionary, calling ``value(reader, key)`` for each member."""
    reader = _Reader(text)
    reader.skip_spaces()
    while reader.peek():
        key = reader.match(_KEY)
        reader.expect("=")
        value(reader, key)
        reader.skip_spaces()
        if not reader.peek():
            return
        reader.expect(",")
        reader.skip_spaces()
        if not reader.peek():
            raise ValueError("trailing comma")


def parse_signature_inputs(text: str) -> list[SignatureInput]:
    found: list[SignatureInput] = []

    def member(reader: _Reader, label: str) -> None:
        reader.expect("(")
        components: list[str] = []
        while True:
            reader.skip_spaces()
            if reader.peek() == ")":
                reader.pos += 1
                break
            components.append(reader.string())
            if reader.peek() == ";":
                raise ValueError("component parameters are not supported")
            if reader.peek() not in (" ", ")"):
                raise ValueError("bad inner list")
        params = reader.params()
        inner = " ".join(f'"{c}"' for c in components)
        serialized = f"({inner})" + "".join(
            f";{k}" if v is True else f";{k}={_serialize(v)}" for k, v in params.items()
        )
        found.append(SignatureInput(label, tuple(components), params, serialized))

    _dictionary(text, member)
    return found


def parse_signatures(text: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}

    def member(reader: _Reader, label: str) -> None:
        reader.expect(":")
        encoded = reader.match(re.compile(r"[A-Za-z0-9+/=]*"))
        reader.expect(":")
        reader.params()
        found[label] = base64.b64decode(encoded, validate=True)

    _dictionary(text, member)
    return found
