"""The typed value columns are a view of ``payload``/``decoded``: check them against it.

The batch's plaintext hash covers ``payload`` and ``decoded`` (gateway.dataset.checks), not the
``json.*``/``value.*`` columns derived from them; so ``dataset verify`` re-derives every typed
cell with the export's own rule (gateway.dataset.rows.value_leaves + flatten.cell) and names any
row whose stored value differs. Pure (no pyarrow): it takes the columns as Python lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.dataset.checks import Problem, Row
from gateway.dataset.flatten import cell, same_value
from gateway.dataset.rows import value_leaves

__all__ = ["MAX_REPORTED", "check_views"]

MAX_REPORTED = 20  # per file: a rewritten column must not print a line per row


def check_views(
    file: str, rows: Sequence[Row], columns: Mapping[str, list[Any]], kinds: Mapping[str, str]
) -> list[Problem]:
    problems: list[Problem] = []
    wrong = 0
    for row in rows:
        leaves, _ = value_leaves(row.reading)
        for name, kind in kinds.items():
            stored = columns[name][row.row]
            expected = cell(kind, leaves.get(name))
            if not same_value(stored, expected):
                wrong += 1
                if len(problems) < MAX_REPORTED:
                    problems.append(
                        Problem(
                            file,
                            f"column {name} holds {stored!r}, the payload says {expected!r}",
                            (row.row, row.row),
                        )
                    )
        extra = set(leaves) - set(kinds)
        if extra and len(problems) < MAX_REPORTED:
            problems.append(
                Problem(
                    file,
                    f"payload has values with no column: {sorted(extra)[:3]}",
                    (row.row, row.row),
                )
            )
    if wrong > len(problems):
        problems.append(Problem(file, f"{wrong} typed cells in all differ from the payload"))
    return problems
