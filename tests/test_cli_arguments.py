"""Any hostile value for any argument of the short-lived subcommands: success, or one line.

The property: ``main(argv)`` returns (or argparse exits) with code 0, 1 or 2; never raises; on a
failure prints exactly one line on stderr and leaves the working directory as it was (no
half-written config, key, ``.partial`` output or empty directory). Commands that start
long-running things (``run``, ``demo``, ``node run``) or reach the network (``fleet``,
``restore --from-network``) are covered by tests/test_cli.py and tests/test_config_mutations.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.modbus import build_response
from gateway.cli import main

ROOT = Path(__file__).resolve().parent.parent
HEX = build_response(1, 3, [1, 2]).hex()

# command -> (base argv, the arguments a mutation may replace or drop); {d} is the scratch dir,
# {n} a fresh name per example so a success never collides with an earlier one.
COMMANDS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "init": (["init", "--config", "{d}/new{n}/g.toml", "--state-dir", "{d}/new{n}/state",
              "--id", "gw{n}"], ("--config", "--state-dir", "--id", "--owner-pub", "--mqtt-port")),
    "restore": (["restore", "--config", "{d}/g.toml", "--out", "{d}/out{n}.jsonl"],
                ("--config", "--out", "--owner-key")),
    "owner-key": (["owner-key", "--out", "{d}/key{n}"], ("--out",)),
    "export-car": (["export-car", "--config", "{d}/g.toml", "--out", "{d}/car{n}"],
                   ("--config", "--out")),
    "verify": (["verify", "--config", "{d}/g.toml"], ("--config",)),
    "status": (["status", "--config", "{d}/g.toml"], ("--config",)),
    "drivers": (["drivers", "decode", "modbus", HEX], ("DRIVER", "HEX", "--option")),
    "piece-cid": (["piece-cid", "{d}/afile"], ("FILE",)),
    "node": (["node", "init", "--config", "{d}/node{n}.toml", "--data-dir", "{d}/nd{n}"],
             ("--config", "--data-dir", "--listen")),
    "wallet init": (["wallet", "init", "--key", "{d}/wallet{n}.key"], ("--key", "--network")),
    "wallet address": (["wallet", "address", "--key", "{d}/wallet.key"], ("--key",)),
}  # fmt: skip
HOSTILE = [
    "", " ", "-1", "0", "1", "65536", "nan", "inf", "-inf", "1e400", str(2**64), "x" * 5000,
    "\x01", "a\nb", "~nosuchuser", "~nosuchuser/x", "/", ".", "..", "{d}", "{d}/afile",
    "{d}/afile/x", "{d}/nodir/x", "{d}/g.toml", "{d}/state/owner.key", "{d}/state", "a/b#",
    "x25519:zz", "ed25519:" + "ab" * 32, "mqtt://h:99999", "127.0.0.1:0", "h:99999", "[::1]:80",
    "registers=v:0:u16", "unit=0", "k", "=v", "00", "zz", "0x" + HEX, "modbus", "pms5003",
]  # fmt: skip
POSITIONAL = {"DRIVER": 2, "HEX": 3, "FILE": 1}
# Dropped, these fall back to /etc/depin-gateway and /var/lib/depin-gateway: never on a test host.
NEVER_DROPPED = {"--config", "--state-dir", "--data-dir", "--key"}
SYSTEM_DEFAULTS = [Path("/etc/depin-gateway"), Path("/var/lib/depin-gateway")]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for default in SYSTEM_DEFAULTS:
        assert not default.exists(), f"{default} exists: this test needs a host without it"
    where = tmp_path_factory.mktemp("args")
    (where / "afile").write_text("some bytes\n")
    made = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "init", "--config", str(where / "g.toml"),
         "--state-dir", str(where / "state"), "--id", "args"],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return where


def _tree(where: Path) -> set[str]:
    """Every path below ``where``; readers (restore, verify, export-car) must not add any."""
    return {str(p.relative_to(where)) for p in where.rglob("*")}


@contextlib.contextmanager
def _in(directory: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


def mutate(argv: list[str], target: str, value: str | None) -> list[str]:
    """Replace (or, for None, drop) one argument's value; add it if the base has none."""
    argv = list(argv)
    if target in POSITIONAL:
        index = POSITIONAL[target]
        return argv[:index] + ([] if value is None else [value]) + argv[index + 1 :]
    if target in argv:
        index = argv.index(target)
        del argv[index : index + 2]
    return argv if value is None else [*argv, target, value]


def run_main(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse usage errors and --help
            code = int(exit_.code or 0)
    return code, err.getvalue()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_argument_value_succeeds_or_is_one_line_and_writes_nothing(
    data: st.DataObject, scratch: Path
) -> None:
    command = data.draw(st.sampled_from(sorted(COMMANDS)))
    base, targets = COMMANDS[command]
    target = data.draw(st.sampled_from(targets))
    values = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40))
    value = data.draw(values if target in NEVER_DROPPED else st.one_of(st.none(), values))
    n = data.draw(st.integers(0, 10**9))
    argv = [
        a.replace("{d}", str(scratch)).replace("{n}", str(n))
        for a in mutate(base, target, value)
        if "\0" not in a  # exec(2) cannot pass a NUL; argv never holds one
    ]
    before = _tree(scratch)
    with _in(scratch):
        code, stderr = run_main(argv)
    for default in SYSTEM_DEFAULTS:  # an empty or odd value must never mean "the default"
        assert not default.exists(), (argv, f"{default} was created")
    assert code in (0, 1, 2), (argv, code, stderr)
    assert "Traceback" not in stderr, (argv, stderr)
    if code != 0:
        assert stderr.strip() and stderr.strip().count("\n") == 0, (argv, stderr)
        assert _tree(scratch) == before, (argv, stderr, _tree(scratch) ^ before)
    assert not [p for p in _tree(scratch) if p.endswith(".partial")], argv
