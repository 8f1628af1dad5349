"""Discovery (pure core): verified asks from config URLs and the fleet broker; newest seq wins.

Sources feed wire messages (JSON bytes or parsed objects) into ``AskBook.offer``; an ask is kept
only if its Ed25519 signature verifies, its body is well formed, the signer is the provider it
names, and its ``seq`` is higher than the one we hold for that provider. Unsigned, invalid or
replayed (older seq) asks are counted and ignored. For asks fetched from a configured URL the
ask's ``url`` must be that URL (a node cannot redirect us elsewhere); asks from the broker are
taken at their word, since any node may join (permissionless) and proofs keep them honest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InputError
from gateway.jsonsafe import loads_bounded
from gateway.market.messages import Ask

__all__ = ["ASK_TOPIC", "AskBook", "parse_ask", "same_url"]

ASK_TOPIC = "depin/v1/nodes/+/ask"


def same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def parse_ask(wire: bytes | str | Any, expected_url: str | None = None) -> Ask:
    """A verified ``Ask`` from its signed wire form, or ``InputError`` saying what is wrong."""
    if isinstance(wire, bytes | str):
        try:
            wire = loads_bounded(wire, "ask")
        except InputError as exc:
            raise InputError("ask", f"not JSON: {exc.reason}") from None
    ask, signer = Ask.open(wire)
    if bytes(signer).hex() != ask.provider.removeprefix("ed25519:"):
        raise InputError("ask", "signed by a key other than the provider it names")
    if expected_url is not None and not same_url(ask.url, expected_url):
        raise InputError("ask", f"names url {ask.url}, fetched from {expected_url}")
    return ask


@dataclass
class AskBook:
    """The newest verified ask per provider (mutable; owned by one thread)."""

    asks: dict[str, Ask] = field(default_factory=dict)
    rejected: int = 0
    last_rejection: str = ""

    def offer(self, wire: bytes | str | Any, expected_url: str | None = None) -> Ask | None:
        """Keep the ask if valid and newer; returns it when kept."""
        try:
            ask = parse_ask(wire, expected_url)
        except InputError as exc:
            self.rejected += 1
            self.last_rejection = str(exc)
            return None
        held = self.asks.get(ask.provider)
        if held is not None and held.seq >= ask.seq:
            return held if held == ask else None
        self.asks[ask.provider] = ask
        return ask

    def by_url(self, url: str) -> Ask | None:
        for ask in self.asks.values():
            if same_url(ask.url, url):
                return ask
        return None
