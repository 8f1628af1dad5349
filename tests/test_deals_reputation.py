"""Second chances (pure): a low node that answers again is usable again, ever more slowly if it
keeps failing, and a passed proof resets that (issue 8 item 13)."""

from __future__ import annotations

from gateway.deals.book import Book
from gateway.deals.reputation import BANNED, PROBATION, TRUSTED, NodeRecord, SecondChances


def _banned() -> NodeRecord:
    record = NodeRecord("ed25519:aa", "u")
    for _ in range(6):
        record = record.failure("timed out", proof=True)
    assert not record.usable
    return record


def _answers_until_lifted(chances: SecondChances, record: NodeRecord) -> int:
    for count in range(1, 10_000):
        if chances.answered(record):
            return count
    raise AssertionError("never lifted")


def test_a_banned_node_that_answers_is_usable_again_but_not_trusted() -> None:
    chances = SecondChances()
    record = _banned()
    assert _answers_until_lifted(chances, record) == 1
    lifted = record.answered()
    assert lifted.usable and BANNED < lifted.reputation == PROBATION < TRUSTED
    assert lifted.consecutive_failures == 0 and lifted.proofs_failed == record.proofs_failed
    assert lifted.answered() == lifted, "an answer adds nothing above probation"
    assert not chances.answered(lifted)


def test_each_second_chance_needs_twice_the_answers_until_a_proof_passes() -> None:
    chances = SecondChances()
    record = _banned()
    needed = []
    for _ in range(5):
        needed.append(_answers_until_lifted(chances, record))
        record = record.answered()
        for _ in range(3):
            record = record.failure("wrong proof", proof=True)
    assert needed == [1, 2, 4, 8, 16]
    record = record.answered().success(proof=True)
    for _ in range(3):
        record = record.failure("timed out", proof=True)
    assert _answers_until_lifted(chances, record) == 1, "a passed proof resets the doubling"


def test_a_failure_between_answers_restarts_the_streak() -> None:
    chances = SecondChances()
    record = _banned().answered().failure("x", proof=True).failure("x", proof=True)
    record = record.failure("x", proof=True)
    assert record.answers_needed == 2
    assert not chances.answered(record)
    record = record.failure("x", proof=False)
    assert not chances.answered(record), "the earlier answer no longer counts"
    assert chances.answered(record)


def test_the_answer_event_replays_into_the_same_record() -> None:
    book = Book()
    book.nodes["ed25519:aa"] = _banned()
    book.apply({"t": "answer", "provider": "ed25519:aa", "at": 1})
    book.apply({"t": "answer", "provider": "ed25519:unknown", "at": 1})
    assert book.nodes["ed25519:aa"].reputation == PROBATION
    assert "ed25519:unknown" not in book.nodes
