"""A JSON-like payload as a *template* (its exact text around the values) plus typed values.

``split`` cuts a payload into the bytes between its values (braces, brackets, keys, separators,
whitespace: the document's shape and style, taken verbatim) and its values (numbers, strings,
``true``/``false``/``null``); ``join`` glues them back. Nothing is re-serialised, so every style
survives: separators with or without spaces, key order, duplicate keys, escapes, indentation::

    {"id":"node-1f","seq":41,"t":21.50}
    -> Template(pieces=(b'{"id":"', b'","seq":', b',"t":', b'}'), kinds=b"snn")
       values [b"node-1f", Number(41, 0), Number(2150, 2)]

A number keeps its literal text exactly: ``Number(mantissa, frac, minus_zero, exponent)`` with the
decimal point removed ("21.50" -> 2150, frac 2; "-0.0" -> 0, frac 1, minus zero; "1.5e-07" ->
15, frac 1, exponent b"e-07"). Anything the tokenizer does not know, or a number with more
digits than ``MAX_DIGITS``, makes ``split`` return ``None``: the caller stores that payload raw.
``split`` checks ``join(split(p)) == p`` itself, so a template is exact or absent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "FALSE",
    "KIND_LITERAL",
    "KIND_NUMBER",
    "KIND_STRING",
    "MAX_DIGITS",
    "MAX_HOLES",
    "NULL",
    "TRUE",
    "Number",
    "Template",
    "Value",
    "join",
    "render_number",
    "split",
]

KIND_NUMBER, KIND_STRING, KIND_LITERAL = ord("n"), ord("s"), ord("l")
FALSE, TRUE, NULL = 0, 1, 2
_LITERALS = (b"false", b"true", b"null")
MAX_DIGITS = 20  # mantissa digits (uint64 fits); longer numbers are "exotic": payload stays raw
MAX_FRAC = 18
MAX_EXPONENT = 8  # bytes of exponent text, "e" included
MAX_HOLES = 255

_TOKEN = re.compile(
    rb"""
      (?P<sep>(?:[\x20\t\n\r{}\[\]:,]+|"(?:[^"\\]|\\[\x00-\xff])*"(?=[\x20\t\n\r]*:))+)
    | "(?P<str>(?:[^"\\]|\\[\x00-\xff])*)"
    | (?P<num>(?P<minus>-?)(?P<int>0|[1-9][0-9]*)(?:\.(?P<frac>[0-9]+))?(?P<exp>[eE][+-]?[0-9]+)?)
      (?![0-9A-Za-z.+\-])
    | (?P<lit>true|false|null)(?![0-9A-Za-z])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Number:
    """A number literal, exactly: ``mantissa`` / 10**``frac`` with its sign and exponent text."""

    mantissa: int
    frac: int = 0
    minus_zero: bool = False
    exponent: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.frac <= MAX_FRAC or len(self.exponent) > MAX_EXPONENT:
            raise ValueError("number literal out of range")
        if self.minus_zero and self.mantissa != 0:
            raise ValueError("minus_zero is only for a zero mantissa")


Value = Number | bytes | int  # number, string body (escapes verbatim), literal (FALSE/TRUE/NULL)


@dataclass(frozen=True, slots=True)
class Template:
    """The exact text between values (``len(kinds) + 1`` pieces) and each value's kind."""

    pieces: tuple[bytes, ...]
    kinds: bytes

    def __post_init__(self) -> None:
        if len(self.pieces) != len(self.kinds) + 1:
            raise ValueError("a template has one more piece than it has values")
        if not set(self.kinds) <= {KIND_NUMBER, KIND_STRING, KIND_LITERAL}:
            raise ValueError("unknown value kind in template")


def render_number(number: Number) -> bytes:
    """The literal text of ``number`` (inverse of the tokenizer's number rule)."""
    digits = str(abs(number.mantissa)).rjust(number.frac + 1, "0")
    if number.frac:
        digits = f"{digits[: -number.frac]}.{digits[-number.frac :]}"
    sign = "-" if number.mantissa < 0 or number.minus_zero else ""
    return (sign + digits).encode("ascii") + number.exponent


def split(payload: bytes) -> tuple[Template, list[Value]] | None:
    """``payload`` as a template and its values, or ``None`` when it must be stored raw."""
    # One findall (in C) for all tokens, then a loop over plain tuples: matching token by token
    # from Python was most of codec v2's encode time (bench/RESULTS.md, "Sealing cost").
    tokens = _TOKEN.findall(payload)
    pieces: list[bytes] = []
    kinds = bytearray()
    values: list[Value] = []
    text: list[bytes] = []
    covered = 0
    for sep, string, num, minus, whole, fraction, exponent, literal in tokens:
        if sep:  # punctuation, whitespace and keys: the text between two values
            text.append(sep)
            covered += len(sep)
            continue
        if num:
            covered += len(num)
            if (len(whole) + len(fraction) > MAX_DIGITS or len(fraction) > MAX_FRAC
                    or len(exponent) > MAX_EXPONENT):  # fmt: skip
                return None
            mantissa = int(whole + fraction)
            value: Value = Number(-mantissa if minus else mantissa, len(fraction),
                                  bool(minus) and mantissa == 0, exponent)  # fmt: skip
            closing, hole = b"", KIND_NUMBER
        elif literal:
            covered += len(literal)
            value, closing, hole = _LITERALS.index(literal), b"", KIND_LITERAL
        else:  # a string value (possibly empty: every other group is empty then too)
            covered += len(string) + 2
            text.append(b'"')
            value, closing, hole = string, b'"', KIND_STRING
        pieces.append(b"".join(text))
        text = [closing]
        kinds.append(hole)
        values.append(value)
    # findall skips what no token matches: the tokens cover the payload only if nothing was.
    if covered != len(payload):
        return None
    pieces.append(b"".join(text))
    if not values or len(values) > MAX_HOLES:
        return None
    template = Template(tuple(pieces), bytes(kinds))
    if join(template, values) != payload:
        return None  # never expected; correctness over ratio
    return template, values


def join(template: Template, values: list[Value]) -> bytes:
    """The payload bytes of ``template`` filled with ``values`` (kinds must match)."""
    if len(values) != len(template.kinds):
        raise ValueError("wrong number of values for the template")
    out = [template.pieces[0]]
    for kind, value, piece in zip(template.kinds, values, template.pieces[1:], strict=True):
        if kind == KIND_NUMBER and isinstance(value, Number):
            out.append(render_number(value))
        elif kind == KIND_STRING and isinstance(value, bytes):
            out.append(value)  # the quotes are in the pieces
        elif kind == KIND_LITERAL and isinstance(value, int) and 0 <= value <= NULL:
            out.append(_LITERALS[value])
        else:
            raise ValueError("value does not match its kind in the template")
        out.append(piece)
    return b"".join(out)
