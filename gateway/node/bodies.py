"""JSON request bodies, bounded before and after parsing (pure).

``parse_json_object(body)`` returns a dict or raises ``InputError`` with a reason fit for a 400.
The stdlib parser alone is not safe on hostile bytes: deep nesting costs C stack and raises
``RecursionError`` only after the damage, a 4,300+ digit number raises ``ValueError`` from
``int()`` (or worse, a float ``inf`` slips through), and a ``\\ud800`` escape yields a ``str`` that
later explodes in ``.encode()`` far from here. So the bytes are checked first (size, strict UTF-8),
the parser is given hooks that refuse huge numbers and NaN/Infinity, and the result is walked
once, iteratively, for its depth, lone surrogates, NUL and long strings, so nothing downstream
(signature checks re-encode every field) ever sees such a value.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import InputError
from gateway.jsonsafe import json_problem

__all__ = ["MAX_DEPTH", "MAX_NUMBER_DIGITS", "MAX_STRING", "parse_json_object"]

MAX_DEPTH = 32  # signed messages nest 3 deep; 32 leaves room and bounds the parser's stack
MAX_NUMBER_DIGITS = 80  # attoFIL amounts travel as strings; 80 digits exceeds any epoch or size
MAX_STRING = 16_384  # the longest legitimate string is a label (DealProposal caps it lower)


def _fail(reason: str) -> InputError:
    return InputError("body", reason)


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _fail(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _fail(f"a number has more than {MAX_NUMBER_DIGITS} characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _fail("a number is out of range")
    return value


def _constant(name: str) -> float:
    raise _fail(f"{name} is not JSON")


def _check_text(text: str) -> None:
    if len(text) > MAX_STRING:
        raise _fail(f"a string is longer than {MAX_STRING} characters")
    if "\0" in text:
        raise _fail("a string contains NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail("a string contains a lone surrogate (\\ud800-\\udfff)") from None


def _check_values(value: Any) -> None:
    """Depth and every string (keys too), iteratively: a recursive walk is what we guard against."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise _fail(f"body nests deeper than {MAX_DEPTH}")
        if isinstance(item, dict):
            for key, inner in item.items():
                _check_text(key)
                stack.append((inner, depth + 1))
        else:
            stack.extend((inner, depth + 1) for inner in item)


def parse_json_object(body: bytes, max_bytes: int) -> dict[str, Any]:
    if len(body) > max_bytes:
        raise _fail(f"body is over {max_bytes} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(f"body is not UTF-8 (byte {exc.start})") from None
    # Bounds first: with a raised recursion limit (py_ecc raises it on import) the C scanner
    # overflows the stack on deep input instead of raising RecursionError.
    problem = json_problem(body)
    if problem is not None:
        raise _fail(f"body is beyond the bounds ({problem})")
    try:
        data = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise _fail(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # the C scanner's own guard, far below a stack overflow
        raise _fail(f"body nests deeper than {MAX_DEPTH}") from None
    if not isinstance(data, dict):
        raise _fail("body must be a JSON object")
    _check_values(data)
    return data
