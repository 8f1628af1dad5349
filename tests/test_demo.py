"""`make demo` keeps working: the whole system, end to end, checks its own restore."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_the_whole_system_and_its_restores_match(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--duration", "12", "--rate", "100",
         "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "kill -9" in result.stdout and "lost with its disk" in result.stdout
    assert "restore check: sent" in result.stdout and "missing 0" in result.stdout
    assert "network restore check" in result.stdout
    assert "demo OK" in result.stdout
