"""Contract ABIs from our compiled artifacts: calldata, return values and event logs.

A thin layer over eth-abi (the encoding) that reads the JSON ABI solc wrote, so calldata for
``registerProvider`` or ``provePossession`` is built from the same source the contract was
compiled from. Overloaded names are refused: our stand-ins define none, and guessing between
overloads is how a call ends up at the wrong selector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any

from gateway.chain.keccak import keccak256
from gateway.errors import ChainError

__all__ = ["ContractAbi", "canonical_type", "load_artifact"]


def canonical_type(param: dict[str, Any]) -> str:
    """``uint256``, ``bytes32[]``, or a tuple spelled out: ``(bytes32,bytes32[])[]``."""
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _types(params: list[dict[str, Any]]) -> list[str]:
    return [canonical_type(p) for p in params]


@dataclass(frozen=True)
class ContractAbi:
    name: str
    entries: tuple[dict[str, Any], ...]

    @cached_property
    def _by_name(self) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in self.entries:
            if entry.get("type") in ("function", "event"):
                key = (entry["type"], entry["name"])
                if key in found:
                    raise ChainError("", f"{self.name}.{entry['name']} is overloaded")
                found[key] = entry
        return found

    def _entry(self, kind: str, name: str) -> dict[str, Any]:
        try:
            return self._by_name[(kind, name)]
        except KeyError:
            raise ChainError("", f"{self.name} has no {kind} {name}") from None

    def signature(self, function: str) -> str:
        entry = self._entry("function", function)
        return f"{function}({','.join(_types(entry['inputs']))})"

    def selector(self, function: str) -> bytes:
        return keccak256(self.signature(function).encode())[:4]

    def calldata(self, function: str, *args: Any) -> bytes:
        from eth_abi.abi import encode

        entry = self._entry("function", function)
        return self.selector(function) + encode(_types(entry["inputs"]), list(args))

    def decode(self, function: str, data: bytes) -> tuple[Any, ...]:
        from eth_abi.abi import decode

        entry = self._entry("function", function)
        return tuple(decode(_types(entry["outputs"]), data))

    def constructor_args(self, *args: Any) -> bytes:
        from eth_abi.abi import encode

        for entry in self.entries:
            if entry.get("type") == "constructor":
                return encode(_types(entry["inputs"]), list(args))
        return b""

    def topic(self, event: str) -> bytes:
        entry = self._entry("event", event)
        return keccak256(f"{event}({','.join(_types(entry['inputs']))})".encode())

    def decode_log(self, event: str, topics: list[bytes], data: bytes) -> dict[str, Any]:
        """An event's arguments by name; indexed ones come from ``topics[1:]``."""
        from eth_abi.abi import decode

        entry = self._entry("event", event)
        if not topics or topics[0] != self.topic(event):
            raise ChainError("", f"log is not a {self.name}.{event} event")
        indexed = [p for p in entry["inputs"] if p.get("indexed")]
        plain = [p for p in entry["inputs"] if not p.get("indexed")]
        values = dict(zip((p["name"] for p in plain), decode(_types(plain), data), strict=True))
        for param, topic in zip(indexed, topics[1:], strict=True):
            values[param["name"]] = decode([canonical_type(param)], topic)[0]
        return values


def load_artifact(name: str) -> dict[str, Any]:
    """The committed artifact ``gateway/chain/artifacts/<name>.json`` (package data)."""
    try:
        text = resources.files("gateway.chain").joinpath("artifacts", f"{name}.json").read_text()
    except FileNotFoundError:
        raise ChainError(
            "", f"no compiled artifact for {name} (run python -m gateway.chain.build)"
        ) from None
    artifact: dict[str, Any] = json.loads(text)
    return artifact


def abi_of(name: str) -> ContractAbi:
    return ContractAbi(name, tuple(load_artifact(name)["abi"]))
