"""Node reputation (pure): an exponentially weighted score from proof and upload outcomes.

Every node starts at ``INITIAL`` (0.5). A success moves the score 10 % of the way to 1; a failure
(wrong proof, wrong bytes, timeout, refused connection, dropped upload) multiplies it by 0.6, so
failures weigh much more than successes and two in a row put a fresh node below ``TRUSTED``.
Nodes below ``BANNED`` are never chosen for new placements.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["BANNED", "INITIAL", "TRUSTED", "NodeRecord"]

INITIAL = 0.5
TRUSTED = 0.3
BANNED = 0.15
_GAIN = 0.1
_PENALTY = 0.6


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """What we learned about a node from our own dealings with it."""

    provider: str
    url: str
    reputation: float = INITIAL
    proofs_passed: int = 0
    proofs_failed: int = 0
    uploads_ok: int = 0
    uploads_failed: int = 0
    consecutive_failures: int = 0
    last_error: str = ""

    def success(self, *, proof: bool) -> NodeRecord:
        return replace(
            self,
            reputation=self.reputation + (1.0 - self.reputation) * _GAIN,
            proofs_passed=self.proofs_passed + proof,
            uploads_ok=self.uploads_ok + (not proof),
            consecutive_failures=0,
        )

    def failure(self, reason: str, *, proof: bool) -> NodeRecord:
        return replace(
            self,
            reputation=self.reputation * _PENALTY,
            proofs_failed=self.proofs_failed + proof,
            uploads_failed=self.uploads_failed + (not proof),
            consecutive_failures=self.consecutive_failures + 1,
            last_error=reason[:300],
        )

    @property
    def usable(self) -> bool:
        return self.reputation >= BANNED
