"""Ethereum JSON-RPC 2.0: a sans-I/O core (request bytes out, typed values or errors in) and a
thin HTTP client with timeouts and bounded, jittered retries.

The node is never trusted: a reply is size-capped before parsing, parsed with Python's JSON
decoder (deep nesting and 4,300+-digit integers become errors, not crashes), and must be a
JSON-RPC 2.0 object with our id and exactly one of ``result`` / ``error``; each result is then
checked against the shape its method promises (``parse_quantity``, ``parse_data``).

Retries cover what a retry can fix, a connection failure or an HTTP 5xx, and only for calls that
are safe to repeat (every read here; ``eth_sendRawTransaction`` of the same bytes is too). A
JSON-RPC error or a malformed reply is final: asking again would not change the node's mind.
"""

from __future__ import annotations

import json
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import RpcError, RpcProtocolError, RpcUnreachable, WrongChainId

__all__ = [
    "HttpReply",
    "RpcClient",
    "Transport",
    "TransportFailure",
    "UrllibTransport",
    "decode_reply",
    "encode_request",
    "parse_data",
    "parse_quantity",
]

MAX_REPLY_BYTES = 4 * 1024 * 1024  # a balance or eth_call reply is tiny; logs will set their own
_MAX_QUANTITY_DIGITS = 64  # uint256
_MAX_MESSAGE = 200  # error text shown to the operator, one line
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
MAX_DEPTH = 32  # replies we read are <= 4 deep (eth_getLogs: result[] > log{} > topics[])
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_ONE_KIND = bytes.maketrans(b"{}", b"[]")  # depth does not care which bracket


def encode_request(request_id: int, method: str, params: Sequence[Any]) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)},
        separators=(",", ":"),
    ).encode()


def _one_line(text: str) -> str:
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    return cleaned if len(cleaned) <= _MAX_MESSAGE else cleaned[:_MAX_MESSAGE] + "..."


def nesting_within(body: bytes, max_depth: int) -> bool:
    """True if no array/object in ``body`` nests deeper than ``max_depth`` (strings skipped).

    Checked before ``json.loads`` because the C decoder recurses once per level: with a raised
    recursion limit (py_ecc sets 100000, see gateway.chain.ethlib) a deep enough document
    overflows the C stack (SIGSEGV) instead of raising. Strings are dropped, then everything
    but brackets, braces become brackets; a run of max_depth+1 openers is rejected at once,
    else each pass deletes the innermost ``[]`` pairs (one level). All in C: a hostile 4 MiB
    reply costs tens of milliseconds, never a crash.
    """
    brackets = _STRING.sub(b"", body).translate(_ONE_KIND, _NOT_BRACKETS)
    if b"[" * (max_depth + 1) in brackets:
        return False
    for _ in range(max_depth):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
    return not brackets  # leftovers: nested deeper, or unbalanced (not JSON anyway)


def decode_reply(
    body: bytes, request_id: int, *, rpc: str, method: str, max_bytes: int = MAX_REPLY_BYTES
) -> object:
    """The ``result`` of a reply to ``request_id``, or RpcError / RpcProtocolError."""
    if len(body) > max_bytes:
        raise RpcProtocolError(rpc, f"{method}: reply larger than {max_bytes} bytes")
    if not nesting_within(body, MAX_DEPTH):
        raise RpcProtocolError(rpc, f"{method}: reply is not JSON nested at most {MAX_DEPTH} deep")
    try:
        reply = json.loads(body)
    except (ValueError, RecursionError) as exc:  # ValueError covers UnicodeDecodeError
        raise RpcProtocolError(
            rpc, f"{method}: reply is not JSON ({_one_line(str(exc))})"
        ) from None
    if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0":
        raise RpcProtocolError(rpc, f"{method}: reply is not a JSON-RPC 2.0 object")
    reply_id = reply.get("id")
    if type(reply_id) is not int or reply_id != request_id:
        raise RpcProtocolError(rpc, f"{method}: reply id {_one_line(repr(reply_id))} is not ours")
    if ("result" in reply) == ("error" in reply):
        raise RpcProtocolError(rpc, f"{method}: reply needs exactly one of result and error")
    if "error" in reply:
        error = reply["error"]
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if type(code) is not int or not isinstance(message, str):
            raise RpcProtocolError(rpc, f"{method}: malformed error object")
        raise RpcError(rpc, method, code, _one_line(message))
    return reply["result"]


def _is_hex(digits: str) -> bool:
    # int(x, 16) and bytes.fromhex also accept "_", "+", spaces: a node must not get those past.
    return set(digits) <= _HEX_DIGITS


def parse_quantity(value: object, *, rpc: str, what: str) -> int:
    """A JSON-RPC QUANTITY: ``"0x"`` + 1..64 hex digits (uint256), nothing else."""
    if isinstance(value, str) and value.startswith("0x"):
        digits = value[2:]
        if 0 < len(digits) <= _MAX_QUANTITY_DIGITS and _is_hex(digits):
            return int(digits, 16)
    raise RpcProtocolError(rpc, f"{what}: not a hex quantity: {_one_line(repr(value))[:80]}")


def parse_data(value: object, *, rpc: str, what: str, max_bytes: int = MAX_REPLY_BYTES) -> bytes:
    """JSON-RPC DATA: ``"0x"`` + an even number of hex digits, at most ``max_bytes`` bytes."""
    if isinstance(value, str) and value.startswith("0x"):
        digits = value[2:]
        if len(digits) % 2 == 0 and len(digits) <= 2 * max_bytes and _is_hex(digits):
            return bytes.fromhex(digits)
    raise RpcProtocolError(rpc, f"{what}: not hex data: {_one_line(repr(value))[:80]}")


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes


class TransportFailure(Exception):
    """The request did not get an HTTP answer (refused, reset, timed out, DNS). Retryable."""


class Transport(Protocol):
    def post(self, url: str, body: bytes, timeout: float, max_bytes: int) -> HttpReply:
        """POST ``body``; read at most ``max_bytes + 1`` bytes of the answer (so a caller can
        tell "too big"); raise TransportFailure when there is no HTTP answer at all."""
        ...


class UrllibTransport:
    """Stdlib HTTP: no extra dependency, and a blocking CLI or worker thread is all it serves."""

    def post(self, url: str, body: bytes, timeout: float, max_bytes: int) -> HttpReply:
        request = urllib.request.Request(  # noqa: S310 - the operator chose the RPC URL
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return HttpReply(response.status, response.read(max_bytes + 1))
        except urllib.error.HTTPError as exc:
            with exc:
                return HttpReply(exc.code, exc.read(max_bytes + 1))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # ValueError: a URL urllib cannot use; http.client errors are OSError subclasses
            # or HTTPException, which urlopen wraps in URLError.
            reason = getattr(exc, "reason", exc)
            raise TransportFailure(_one_line(str(reason) or type(exc).__name__)) from exc
        except Exception as exc:  # http.client.HTTPException from a garbage status line
            raise TransportFailure(_one_line(f"{type(exc).__name__}: {exc}")) from exc


class RpcClient:
    """One endpoint. ``attempts`` bounds tries per call; sleep and randomness are injected."""

    def __init__(
        self,
        url: str,
        *,
        transport: Transport | None = None,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.5,
        max_bytes: int = MAX_REPLY_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.url = url
        self._transport: Transport = transport or UrllibTransport()
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._max_bytes = max_bytes
        self._sleep = sleep
        self._rng = rng
        self._next_id = 1

    def call(self, method: str, params: Sequence[Any] = ()) -> object:
        request_id = self._next_id
        self._next_id += 1
        body = encode_request(request_id, method, params)
        reason = ""
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                # Exponential backoff with full-range jitter: clients that failed together
                # (a node restart) do not all come back in the same instant.
                self._sleep(self._backoff * 2 ** (attempt - 2) * (0.5 + self._rng()))
            try:
                reply = self._transport.post(self.url, body, self._timeout, self._max_bytes)
            except TransportFailure as exc:
                reason = str(exc)
                continue
            if reply.status >= 500:
                reason = f"HTTP {reply.status}"
                continue
            if reply.status != 200:
                raise RpcProtocolError(self.url, f"{method}: HTTP {reply.status}")
            return decode_reply(
                reply.body, request_id, rpc=self.url, method=method, max_bytes=self._max_bytes
            )
        raise RpcUnreachable(self.url, self._attempts, reason)

    def chain_id(self) -> int:
        return parse_quantity(self.call("eth_chainId"), rpc=self.url, what="eth_chainId")

    def check_chain_id(self, expected: int) -> None:
        """Refuse to go on against another chain than configured (signatures are chain-bound,
        but balances and reads would silently describe the wrong network)."""
        actual = self.chain_id()
        if actual != expected:
            raise WrongChainId(self.url, expected, actual)

    def get_balance(self, address: str, block: str = "latest") -> int:
        result = self.call("eth_getBalance", [address, block])
        return parse_quantity(result, rpc=self.url, what="eth_getBalance")

    def eth_call(self, to: str, data: bytes, block: str = "latest") -> bytes:
        result = self.call("eth_call", [{"to": to, "data": "0x" + data.hex()}, block])
        return parse_data(result, rpc=self.url, what="eth_call", max_bytes=self._max_bytes)
