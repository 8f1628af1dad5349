"""The one error tree of depin-gateway.

Every error the gateway raises on purpose is a ``GatewayError``; the subclass says whose fault it
is, and the attributes carry the data needed to act on it (a config key, a topic, a node, a batch)::

    GatewayError
    ├── ConfigError            the operator's config or command line is wrong (key, fix)
    ├── InputError             a sensor or publisher sent bad data (source)
    │   ├── FrameError         a serial frame is malformed (driver, reason, raw)
    │   └── PayloadError       an MQTT payload is rejected (topic, reason)
    ├── RemoteError            a remote peer misbehaved (peer)
    │   └── NodeError          a storage node answered wrongly or not at all (node)
    ├── StorageError           the local disk or state directory failed (path)
    │   ├── SpoolCorrupt       a spool segment is damaged beyond a torn tail (path, offset)
    │   └── DiskFull           the disk budget is exhausted (path, used, budget)
    ├── IntegrityError         verify found a bad signature, hash or chain link (batch, field)
    ├── KeyMaterialError       a key is missing, unreadable or does not fit (path)
    └── ChainError             talking to an EVM chain (FEVM) failed (rpc)
        ├── WrongChainId       the RPC serves another chain than configured (expected, actual)
        ├── RpcUnreachable     no answer after bounded retries (attempts, reason)
        ├── RpcError           the node answered a JSON-RPC error object (code, message)
        ├── RpcProtocolError   the node answered something that is not a valid reply (reason)
        ├── UnfundedWallet     a balance is below what a step needs (address, asset, have, need)
        └── TransactionReverted a transaction or call was rejected by the contract (reason)

Third-party exceptions are translated at the boundary with ``raise ... from exc`` so callers only
ever catch this tree; the CLI prints ``str(error)`` as one line and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "ChainError",
    "ConfigError",
    "DiskFull",
    "FrameError",
    "GatewayError",
    "InputError",
    "IntegrityError",
    "KeyMaterialError",
    "NodeError",
    "PayloadError",
    "RemoteError",
    "RpcError",
    "RpcProtocolError",
    "RpcUnreachable",
    "SpoolCorrupt",
    "StorageError",
    "TransactionReverted",
    "UnfundedWallet",
    "WrongChainId",
    "one_line",
]


def one_line(text: str, limit: int) -> str:
    """``text`` without control characters (escaped) and at most about ``limit`` characters."""
    if text.isprintable() and len(text) <= limit:
        return text
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit * 2])
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


class GatewayError(Exception):
    """Root of every error depin-gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration (file or command line) is wrong; ``key`` names it, ``fix`` says how."""

    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        # A TOML key may hold newlines or be megabytes long; the message stays one short line.
        shown = one_line(key, 80)
        message = f"config: {shown}: {problem}" if key else f"config: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(one_line(message, 1000))


class InputError(GatewayError):
    """A sensor or publisher sent data we cannot accept. Never fatal for the gateway."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class FrameError(InputError):
    """A serial frame is malformed: bad header, length or checksum."""

    def __init__(self, driver: str, reason: str, raw: bytes = b"") -> None:
        self.driver = driver
        self.raw = bytes(raw)
        super().__init__(driver, reason)


class PayloadError(InputError):
    """An MQTT payload is rejected (oversized, not valid for its topic's declared format)."""

    def __init__(self, topic: str, reason: str) -> None:
        self.topic = topic
        super().__init__(topic, reason)


class RemoteError(GatewayError):
    """A remote peer (broker, storage node) misbehaved or could not be reached."""

    def __init__(self, peer: str, reason: str) -> None:
        self.peer = peer
        self.reason = reason
        super().__init__(f"{peer}: {reason}")


class NodeError(RemoteError):
    """A storage node answered wrongly (bad bytes, bad proof, bad signature) or not at all."""


class StorageError(GatewayError):
    """The local disk or state directory failed us."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class SpoolCorrupt(StorageError):
    """A spool segment is damaged somewhere other than its tail (which recovery truncates)."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.offset = offset
        super().__init__(path, f"at byte {offset}: {reason}")


class DiskFull(StorageError):
    """The disk budget is used up; callers apply backpressure rather than drop."""

    def __init__(self, path: str, used: int, budget: int) -> None:
        self.used = used
        self.budget = budget
        super().__init__(path, f"disk budget reached ({used} of {budget} bytes)")


class IntegrityError(GatewayError):
    """``verify`` found a bad signature, hash or chain link; names the batch and the field."""

    def __init__(self, batch: int | str, field: str, reason: str) -> None:
        self.batch = batch
        self.field = field
        self.reason = reason
        super().__init__(f"batch {batch}: {field}: {reason}")


class KeyMaterialError(GatewayError):
    """A key file is missing, unreadable, of the wrong kind, or cannot open this data."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class ChainError(GatewayError):
    """Talking to an EVM chain failed; ``rpc`` is the endpoint (never a key or a secret)."""

    def __init__(self, rpc: str, reason: str) -> None:
        self.rpc = rpc
        self.reason = reason
        super().__init__(f"chain {rpc}: {reason}" if rpc else f"chain: {reason}")


class WrongChainId(ChainError):
    """``eth_chainId`` differs from the configured network: signing there could spend elsewhere."""

    def __init__(self, rpc: str, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            rpc,
            f"wrong chain id {actual}, expected {expected}"
            " (check --network / --rpc: they must name the same chain)",
        )


class RpcUnreachable(ChainError):
    """No usable answer after the bounded retries (connection refused, timeout, HTTP 5xx)."""

    def __init__(self, rpc: str, attempts: int, reason: str) -> None:
        self.attempts = attempts
        super().__init__(rpc, f"unreachable after {attempts} attempt(s): {reason}")


class RpcError(ChainError):
    """The node answered a JSON-RPC error object (e.g. an execution revert)."""

    def __init__(self, rpc: str, method: str, code: int, message: str) -> None:
        self.method = method
        self.code = code
        self.message = message
        super().__init__(rpc, f"{method} failed: error {code}: {message}")


class RpcProtocolError(ChainError):
    """The node answered something that is not a valid JSON-RPC reply; we never trust it."""


class UnfundedWallet(ChainError):
    """A balance is below what a step needs; amounts are in the asset's smallest unit."""

    def __init__(self, rpc: str, address: str, asset: str, have: int, need: int, step: str) -> None:
        self.address = address
        self.asset = asset
        self.have = have
        self.need = need
        self.step = step
        super().__init__(
            rpc,
            f"wallet {address} has {have} of the {need} {asset} (smallest unit) that {step} needs;"
            f" fund it with {asset} first",
        )


class TransactionReverted(ChainError):
    """A contract rejected a call or a mined transaction failed; ``reason`` is its revert text."""

    def __init__(self, rpc: str, what: str, reason: str, tx_hash: str = "") -> None:
        self.what = what
        self.revert_reason = reason
        self.tx_hash = tx_hash
        super().__init__(rpc, f"{what} reverted: {reason}")
