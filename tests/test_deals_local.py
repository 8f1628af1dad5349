"""Local object files under concurrent writers (issue 8 item 13): several placements of one piece
write its layer, staging copy or snapshot at once from different threads, without an error and
without a stray temporary file."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.deals.local import LocalObjects
from gateway.deals.repair import piece_cid_of

WRITERS = 8
ROUNDS = 10


def _race(work: Callable[[], None]) -> list[BaseException]:
    """Run ``work`` in ``WRITERS`` threads released together; the errors they raised."""
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            work()
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def _write(kind: str, local: LocalObjects, piece: str, payload: bytes) -> None:
    if kind == "layer":
        local.ensure_layer(piece, payload)
    elif kind == "stage":
        local.stage(piece, payload)
    else:
        local.save_snapshot(1, payload)


@pytest.mark.parametrize("kind", ["layer", "stage", "snapshot"])
def test_concurrent_writers_of_one_piece_all_succeed_and_leave_one_good_file(
    tmp_path: Path, kind: str
) -> None:
    for round_ in range(ROUNDS):
        local = LocalObjects(tmp_path / f"state{round_}", None)
        payload = os.urandom(4096 + round_)
        piece = piece_cid_of(payload)
        errors = _race(functools.partial(_write, kind, local, piece, payload))
        assert errors == [], f"round {round_}: {errors[0]!r}"
        if kind == "layer":
            assert local.layer(piece) is not None
        elif kind == "stage":
            assert local.staged(piece) == payload
        else:
            assert local.snapshot(1, piece) == payload
        left = [p.name for p in local.root.rglob("*") if p.name.endswith(".tmp")]
        assert left == [], "every temporary file was renamed"
