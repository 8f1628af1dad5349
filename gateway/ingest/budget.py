"""The disk budget: watermarks with hysteresis, so backpressure neither flaps nor drops."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BudgetState", "DiskBudget"]


@dataclass(frozen=True, slots=True)
class BudgetState:
    used: int
    budget: int
    filesystem_free: int
    backpressure: bool
    reserve: int = 0

    @property
    def below_reserve(self) -> bool:
        """The filesystem itself is (nearly) full, whatever the budget says."""
        return self.filesystem_free < self.reserve

    @property
    def fraction(self) -> float:
        return self.used / self.budget if self.budget else 0.0


class DiskBudget:
    """Backpressure starts at ``high`` x budget (or when the filesystem itself runs low) and ends
    only below ``low`` x budget, so a full gateway resumes in bursts instead of per message."""

    def __init__(
        self,
        path: Path,
        budget: int,
        high: float,
        low: float,
        usage: Callable[[], int],
        reserve: int = 8 * 1024 * 1024,
    ) -> None:
        self.path = path
        self.budget = budget
        self.high = high
        self.low = low
        self.reserve = reserve
        self._usage = usage
        self._backpressure = False

    def check(self, incoming: int = 0) -> BudgetState:
        used = self._usage() + incoming
        try:
            free = shutil.disk_usage(self.path).free
        except OSError:
            free = 0
        low_disk = free - incoming < self.reserve
        if self._backpressure:
            if used < self.low * self.budget and not low_disk:
                self._backpressure = False
        elif used >= self.high * self.budget or low_disk:
            self._backpressure = True
        return BudgetState(used, self.budget, free, self._backpressure, self.reserve)

    @property
    def backpressure(self) -> bool:
        return self._backpressure
