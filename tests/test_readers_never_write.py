"""Readers never write (DESIGN section 2): restore, verify and export-car beside a daemon.

Every reader runs under strace: no call may create, open for writing, truncate, rename or delete
anything in the state directory, whatever instant of a segment's or batch's life it meets. The
live test holds a real daemon at exact syscalls (strace fault injection on the next segment's
path) and runs every reader inside each window; nothing acknowledged may be lost afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.spool.record import SEGMENT_MAGIC
from gateway.testing.broker import Broker
from tests.conftest import ROOT, GatewayProcess, Publisher, restore, write_config

pytestmark = pytest.mark.slow

_MUTATING = "openat,creat,unlink,unlinkat,rename,renameat,renameat2,truncate,ftruncate,mkdir,"
_MUTATING += "mkdirat,rmdir,link,linkat,symlink,symlinkat,chmod,fchmodat,utimensat"
_WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC")


def _tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under ``root``: kind, mode and content hash (files) — a byte-exact picture."""
    found: dict[str, tuple[str, int, str]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_file():
            found[str(path.relative_to(root))] = (
                "file",
                info.st_mode,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
        else:
            found[str(path.relative_to(root))] = ("dir", info.st_mode, "")
    return found


def _reader_argv(name: str, config: Path, out: Path) -> list[str]:
    argv = [sys.executable, "-m", "gateway.cli", name, "--config", str(config)]
    return [*argv, "--out", str(out)] if name in ("restore", "export-car") else argv


def _start_reader(name: str, config: Path, work: Path) -> tuple[subprocess.Popen[str], Path]:
    trace = work / f"{name}.trace"
    argv = ["strace", "-f", "-qq", "-y", "-e", "signal=none", "-e", f"trace={_MUTATING}"]
    argv += ["-o", str(trace), *_reader_argv(name, config, work / f"{name}.out")]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    return process, trace


def _writes_into(trace: Path, state: Path) -> list[str]:
    """Lines of a reader's trace that change something under the state directory."""
    bad = []
    for line in trace.read_text().splitlines():
        if str(state) not in line:
            continue
        call = line.split(None, 1)[1] if line[0].isdigit() else line
        if call.startswith(("openat(", "creat(")) and not _WRITE_FLAGS.search(call):
            continue
        bad.append(line)
    return bad


def _run_readers(config: Path, state: Path, work: Path) -> dict[str, str]:
    """Every reader at once (they overlap the same instant); returns each one's stderr."""
    work.mkdir(parents=True, exist_ok=True)
    started = {n: _start_reader(n, config, work) for n in ("restore", "verify", "export-car")}
    errors = {name: process.communicate(timeout=120)[1] for name, (process, _) in started.items()}
    for name, (process, trace) in started.items():
        assert process.returncode == 0, f"{name} failed: {errors[name]}"
        assert _writes_into(trace, state) == [], f"{name} wrote into the state directory"
    return errors


def _restored_ids(path: Path) -> list[int]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [json.loads(r["payload"])["id"] for r in rows if r["topic"].startswith("sensors/")]


# -- a stopped state directory, in each instant a crash can leave ----------------------------


@pytest.fixture(scope="module")
def stopped_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state directory killed with kill -9 mid-run: sealed batches and unsealed readings."""
    base = tmp_path_factory.mktemp("base")
    with Broker(base / "broker") as broker:
        config = write_config(base, broker.port, extra="[batch]\nmax_readings = 20\n")
        gw = GatewayProcess(config)
        gw.start()
        publisher = Publisher(broker.port)
        sent = [("sensors/t", json.dumps({"id": i, "v": i * 0.5})) for i in range(50)]
        publisher.publish_all(sent)
        gw.wait_for(lambda s: s["readings_total"] == 50 and s["batches_sealed"] == 2)
        gw.kill9()
        publisher.close()
    yield base


def _crash_new_segment(state: Path) -> None:
    (state / "spool" / f"{10**9:020d}.seg").touch()


def _crash_magic_only(state: Path) -> None:
    (state / "spool" / f"{10**9:020d}.seg").write_bytes(SEGMENT_MAGIC[:5])


def _crash_torn_tail(state: Path) -> None:
    last = sorted((state / "spool").glob("*.seg"))[-1]
    with open(last, "ab") as handle:
        handle.write(b"\x40\x00\x00\x00\x12\x34\x56\x78\x01half a record")


def _crash_vault_tmp(state: Path) -> None:
    tmp = state / "vault" / f".tmp-{2:012d}-4242"
    tmp.mkdir()
    (tmp / "frag-0.bin").write_bytes(b"a batch being written")


def _crash_vault_headerless(state: Path) -> None:
    (state / "vault" / f"{2:012d}").mkdir()


def _crash_no_genesis(state: Path) -> None:
    (state / "identity-genesis.pub").unlink()


@pytest.mark.parametrize(
    "instant",
    [
        _crash_new_segment,
        _crash_magic_only,
        _crash_torn_tail,
        _crash_vault_tmp,
        _crash_vault_headerless,
        _crash_no_genesis,
    ],
    ids=lambda f: f.__name__.removeprefix("_crash_"),
)
def test_every_reader_leaves_a_stopped_state_directory_byte_identical(
    stopped_state: Path, tmp_path: Path, instant: Callable[[Path], None]
) -> None:
    shutil.copytree(stopped_state, tmp_path / "gw", symlinks=True)
    config = tmp_path / "gw" / "gateway.toml"
    config.write_text(config.read_text().replace(str(stopped_state), str(tmp_path / "gw")))
    state = tmp_path / "gw" / "state"
    instant(state)
    before = _tree(state)
    _run_readers(config, state, tmp_path / "readers")
    assert _tree(state) == before
    assert _restored_ids(tmp_path / "readers" / "restore.out") == list(range(50))


# -- a live daemon, held at each instant of a new segment's life --------------------------


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def test_readers_beside_a_live_daemon_at_each_instant_of_a_new_segment_lose_nothing(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = write_config(tmp_path, broker.port)
    state = tmp_path / "state"
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    payload = lambda i: json.dumps({"id": i, "pad": "x" * 60})  # noqa: E731
    publisher.publish_all([("sensors/t", payload(i)) for i in range(60)])
    gw.wait_for(lambda s: s["readings_total"] == 60)
    gw.stop()
    # With 4 KiB segments the open segment (over 4 KiB now) is full: the next commit starts a
    # new segment, named by the sequence number after its group (reading 61 alone: 62).
    config.write_text(config.read_text().replace('segment_size = "1MiB"', "segment_size = 4096"))
    segment = state / "spool" / f"{62:020d}.seg"
    hold = "delay_exit=4000000"  # each window is 4 s: long enough for three readers to run
    strace = ("strace", "-f", "-qq", "-e", "signal=none", "-o", "/dev/null", "-P", str(segment),
              "-e", "trace=openat,write", "-e", f"inject=openat:{hold}:when=1",
              "-e", f"inject=write:{hold}:when=1..2")  # fmt: skip
    gw.start(prefix=strace)
    publisher.publish_all([("sensors/t", payload(60))])
    # 1: the segment exists and is empty; 2: its header is written, not yet synced; 3: the first
    # records are written, the fdatasync that covers them not yet made.
    for instant, ready in (
        ("new", lambda: _size(segment) == 0),
        ("header", lambda: _size(segment) == len(SEGMENT_MAGIC)),
        ("records", lambda: _size(segment) > len(SEGMENT_MAGIC)),
    ):
        _wait(ready, f"the daemon to reach the {instant!r} instant")
        _run_readers(config, state, tmp_path / instant)
        assert segment.exists(), f"a reader removed the daemon's segment at {instant!r}"
    gw.wait_for(lambda s: s["readings_total"] == 61)
    publisher.publish_all([("sensors/t", payload(i)) for i in range(61, 120)])
    gw.wait_for(lambda s: s["readings_total"] == 120)
    daemon_pid = json.loads((state / "daemon.json").read_text())["pid"]
    os.kill(daemon_pid, signal.SIGTERM)
    assert gw.process is not None
    gw.process.wait(timeout=60)
    gw.process = None
    gw.start()
    gw.stop()
    assert _restored_ids_rows(restore(config, tmp_path / "final.jsonl")) == list(range(120))
    publisher.close()


def _restored_ids_rows(rows: list[dict[str, object]]) -> list[int]:
    return [json.loads(str(r["payload"]))["id"] for r in rows]
