"""Node reputation (pure): an exponentially weighted score from proof and upload outcomes.

Every node starts at ``INITIAL`` (0.5). A success moves the score 10 % of the way to 1; a failure
(wrong proof, wrong bytes, timeout, refused connection, dropped upload) multiplies it by 0.6, so
failures weigh much more than successes and two in a row put a fresh node below ``TRUSTED``.
Nodes below ``BANNED`` are never chosen for new placements.

A banned node gets no placements, so no proof or upload could ever raise its score again: a node
that was only paused or offline would stay banned for good. So answering again earns a second
chance (``NodeRecord.answered``): a node below ``PROBATION`` that answers its ask in
``answers_needed`` discovery rounds in a row, with no new failure meanwhile, is lifted to
``PROBATION`` (usable, not trusted); only proofs and uploads take it higher. Each second chance
doubles the answers the next one needs, and a passed proof or upload resets that, so a node that
answers asks but fails proofs gets ever rarer chances (``SecondChances`` counts the rounds).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["BANNED", "INITIAL", "PROBATION", "TRUSTED", "NodeRecord", "SecondChances"]

INITIAL = 0.5
TRUSTED = 0.3
PROBATION = 0.2  # above BANNED (chosen again), below TRUSTED
BANNED = 0.15
_GAIN = 0.1
_PENALTY = 0.6
_MAX_DOUBLINGS = 12  # 4,096 rounds: a few hours at the 5 s discovery interval


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
    second_chances: int = 0  # since the last passed proof or upload

    def success(self, *, proof: bool) -> NodeRecord:
        return replace(
            self,
            reputation=self.reputation + (1.0 - self.reputation) * _GAIN,
            proofs_passed=self.proofs_passed + proof,
            uploads_ok=self.uploads_ok + (not proof),
            consecutive_failures=0,
            second_chances=0,
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

    def answered(self) -> NodeRecord:
        """A second chance (module docstring): at least ``PROBATION``, failure streak over."""
        if self.reputation >= PROBATION:
            return self
        return replace(
            self,
            reputation=PROBATION,
            consecutive_failures=0,
            second_chances=self.second_chances + 1,
        )

    @property
    def failures(self) -> int:
        return self.proofs_failed + self.uploads_failed

    @property
    def answers_needed(self) -> int:
        return 1 << min(self.second_chances, _MAX_DOUBLINGS)

    @property
    def usable(self) -> bool:
        return self.reputation >= BANNED


@dataclass
class SecondChances:
    """Answers in a row per provider since its last failure (mutable; owned by one thread)."""

    _streaks: dict[str, tuple[int, int]] = field(default_factory=dict)  # failures seen, answers

    def answered(self, record: NodeRecord) -> bool:
        """Count one answer; True when ``record`` has now earned ``NodeRecord.answered``."""
        if record.reputation >= PROBATION:
            self._streaks.pop(record.provider, None)
            return False
        failures, answers = self._streaks.get(record.provider, (record.failures, 0))
        if failures != record.failures:  # it failed again since: the streak starts over
            answers = 0
        answers += 1
        if answers >= record.answers_needed:
            self._streaks.pop(record.provider, None)
            return True
        self._streaks[record.provider] = (record.failures, answers)
        return False
