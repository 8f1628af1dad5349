"""Any mutation of the config ``init`` writes loads into a working config or is one line, exit 2.

The mutations are what an operator (or a tester) does to the file: delete a key, change its type,
set extreme values (NaN, infinities, -1, 0, 2**64, huge strings, NUL, 5,000-deep arrays, empty
strings). ``load_config`` must return a config whose every number is finite and in range, or
raise ``ConfigError`` naming a key with a one-line message; for a sample the real daemon is
started and must either exit 2 with one line on stderr or reach a healthy status.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import Config, load_config
from gateway.errors import ConfigError
from gateway.testing.broker import Broker, free_port

ROOT = Path(__file__).resolve().parent.parent

# Keys init leaves commented out or omits: a mutation may add them too.
EXTRA_KEYS = {
    "gateway": (),
    "spool": (),
    "mqtt": ("client_id", "keepalive", "username", "password", "password_file", "tls",
             "ca_file", "cert_file", "key_file", "reconnect_min", "reconnect_max"),
    "batch": (),
    "owner": (),
    "storage": ("allow_same_node", "upload_rate", "request_timeout", "object_replicas",
                "repair_after"),
    "proving": (),
    "status": (),
    "fleet": ("broker",),
    "serial": ("name", "port", "driver", "baudrate", "parity", "options", "reopen_max"),
}  # fmt: skip
# A serial entry the mutations can work on (init writes it commented out).
SERIAL = {"name": "pm", "port": "/dev/null-depin-test", "driver": "pms5003", "baudrate": 9600}
# Rules across sections name their own key, which need not be the one mutated.
CROSS_KEYS = {"gateway.low_watermark", "spool.segment_size", "mqtt.enabled", "serial.name",
              "mqtt.quarantine_size"}  # fmt: skip
# Changing these points the daemon at a broker that is not there (or needs credentials): the
# config is fine, the peer is missing. The daemon sample leaves them out; load_config does not.
UNREACHABLE = {"mqtt.host", "mqtt.port", "mqtt.tls", "mqtt.username", "mqtt.password",
               "mqtt.password_file", "mqtt.ca_file", "mqtt.cert_file", "mqtt.key_file",
               "mqtt.enabled", "mqtt.topics", "mqtt.client_id"}  # fmt: skip

HOST_DEFAULTS = {("gateway", "state_dir"), ("status", "listen")}


def _uses_host_defaults(change: tuple[str, str, str, str]) -> bool:
    """Would fall back to /var/lib/depin-gateway or port 8787 of the host running the test."""
    op, section, key, _ = change
    if op == "section":
        return section in {s for s, _ in HOST_DEFAULTS}
    return op == "delete" and (section, key) in HOST_DEFAULTS


HOSTILE = [
    "nan", "inf", "-inf", "-1", "0", "1", str(2**64), str(2**63), "-0.0", "1.5", "1e308",
    '""', '" "', '"\\u0000"', '"a\\u0000b"', "[]", "[1, 2]", '["a", "b"]', "{}", "{a = 1}",
    "true", "false", "1979-05-27T07:32:00Z", '"' + "x" * 70_000 + '"', '"' + "9" * 5000 + '"',
    "[" * 5000 + "]" * 5000, '"99999999999999d"', '"-1s"', '"1e400s"', '"nan"', '"inf"',
    '"0s"', '"0"', '"1PiB"', '"1.5"', '"~nosuchuser/x"', '"~nosuchuser"', '"host:"',
    '":80"', '"[::1]:99999"', '"mqtt://h:99999"', '"mqtt://:1"', '"http://h:0"', '"127.0.0.1:0"',
    '"a/b#"', '"+/#"', '"a\\nb"', '"\\u00e9"', '"/"', '"."', '"60s"', '"5m"', '"512MiB"',
]  # fmt: skip


def toml_value(value: Any) -> str:
    """A TOML literal for a value read by tomllib (the init config has no deep nesting)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise AssertionError(f"unexpected TOML value {value!r}")


def render(sections: dict[str, dict[str, str]], top: dict[str, str] | None = None) -> str:
    """Sections of key -> TOML literal text, ``serial`` as one [[serial]] entry; ``top`` holds
    top-level assignments (a section replaced by a plain value)."""
    lines = [f"{json.dumps(key)} = {text}" for key, text in (top or {}).items()]
    for name, keys in sections.items():
        lines.append(f"[[{name}]]" if name == "serial" else f"[{name}]")
        lines += [f"{json.dumps(key)} = {text}" for key, text in keys.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, broker: Broker) -> dict[str, dict[str, str]]:
    """What ``depin-gateway init`` writes, as sections of key -> TOML literal text."""
    where = tmp_path_factory.mktemp("init")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "init", "--config", str(where / "gateway.toml"),
         "--state-dir", str(where / "state"), "--id", "mutant", "--mqtt-port", str(broker.port)],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = tomllib.loads((where / "gateway.toml").read_text())
    data["status"]["listen"] = f"127.0.0.1:{free_port()}"
    data["serial"] = SERIAL
    data["spool"]["segment_size"] = "1MiB"  # keeps the sample's state directories small
    return {name: {k: toml_value(v) for k, v in keys.items()} for name, keys in data.items()}


def _key_choices(base: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    return sorted({(s, k) for s, keys in base.items() for k in keys} |
                  {(s, k) for s, keys in EXTRA_KEYS.items() for k in keys})  # fmt: skip


@st.composite
def mutations(draw: st.DrawFn, choices: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """1 to 3 of: delete a key, set it to a hostile or arbitrary value, add an unknown key."""
    values = st.one_of(
        st.sampled_from(HOSTILE),
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(
            lambda f: "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf") if math.isinf(f)
            else repr(f)
        ),
        st.text(max_size=30).map(lambda s: json.dumps(s, ensure_ascii=False)),
    )  # fmt: skip
    count = draw(st.integers(1, 3))
    result = []
    for _ in range(count):
        section, key = draw(st.sampled_from(choices))
        op = draw(st.sampled_from(["delete", "set", "set", "set", "unknown", "section"]))
        result.append((op, section, key, draw(values)))
    return result


def apply(base: dict[str, dict[str, str]], changes: list[tuple[str, str, str, str]]) -> str:
    sections = {name: dict(keys) for name, keys in base.items()}
    top: dict[str, str] = {}
    for op, section, key, value in changes:
        if op == "section":  # the whole section deleted, or a plain value instead of a table
            sections.pop(section, None)
            if value != "0":
                top[section] = value
        elif op == "delete":
            sections.get(section, {}).pop(key, None)
        elif op == "set":
            sections.setdefault(section, {})[key] = value
        else:
            sections.setdefault(section, {})[key + "_x"] = value
    return render(sections, top)


def _numbers(value: object, where: str) -> Iterator[tuple[str, float]]:
    if is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            yield from _numbers(getattr(value, f.name), f"{where}.{f.name}")
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{where}[{index}]")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield where, value


def check_loaded(config: Config) -> None:
    """What a working config means for its numbers: finite, and within the wire's fields."""
    for where, number in _numbers(config, "config"):
        assert math.isfinite(number) and 0 <= number <= 2**63, (where, number)
    assert config.spool.commit_interval <= 10
    assert config.mqtt.keepalive <= 65535 and config.mqtt.session_expiry <= 2**32 - 1
    for text in (config.mqtt.client_id, *(rule.filter for rule in config.mqtt.topics)):
        assert 0 < len(text.encode()) <= 65535 and "\0" not in text
    assert config.mqtt.host and config.status.host and 0 < config.status.port <= 65535


def check_error(error: ConfigError, changes: list[tuple[str, str, str, str]]) -> None:
    message = str(error)
    assert "\n" not in message and len(message) < 1200, message
    assert error.fix, message
    if error.key:  # empty only for a file that is not TOML at all
        sections = {section for _, section, _, _ in changes}
        assert error.key.split(".")[0].split("[")[0] in sections or error.key in CROSS_KEYS, (
            message,
            changes,
        )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_mutation_loads_or_names_the_key(
    data: st.DataObject, base: dict[str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    changes = data.draw(mutations(_key_choices(base)))
    path = tmp_path_factory.getbasetemp() / "mutated.toml"
    path.write_text(apply(base, changes))
    try:
        config = load_config(path)
    except ConfigError as error:
        check_error(error, changes)
    else:
        check_loaded(config)


def _healthy(config: Config) -> bool:
    url = f"http://{config.status.host}:{config.status.port}"
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            if response.status != 200:
                return False
        with urllib.request.urlopen(url + "/status", timeout=2) as response:
            status = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return bool(status["sources"]["mqtt"]["connected"]) and not status["last_error"]


def run_daemon(path: Path) -> tuple[str, int, str]:
    """Start ``run --config``: ("exit", code, stderr) once it exits, ("healthy", 0, "") once
    its status says healthy. Polls the status, so a negative answer is never a guess."""
    try:
        config: Config | None = load_config(path)
    except ConfigError:
        config = None
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--quiet", "--config", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                assert process.stderr is not None
                return "exit", process.returncode, process.stderr.read()
            if config is not None and _healthy(config):
                return "healthy", 0, ""
            time.sleep(0.1)
        raise AssertionError(f"neither exited nor became healthy in 30 s: {path.read_text()}")
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_daemon_either_exits_2_in_one_line_or_becomes_healthy(
    data: st.DataObject, base: dict[str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The real daemon, not only load_config: no traceback, no half-working start."""
    choices = [(s, k) for s, k in _key_choices(base) if f"{s}.{k}" not in UNREACHABLE]
    changes = data.draw(mutations(choices))
    where = tmp_path_factory.mktemp("run")
    sections = {name: dict(keys) for name, keys in base.items()}
    sections["status"]["listen"] = json.dumps(f"127.0.0.1:{free_port()}")
    sections.pop("serial")  # a serial port that cannot open is retried, never healthy
    path = where / "gateway.toml"
    # Without these keys the daemon would use /var/lib/depin-gateway or port 8787 of the host.
    kept = [c for c in changes if c[1] in sections and not _uses_host_defaults(c)]
    path.write_text(apply(sections, kept))
    outcome, code, stderr = run_daemon(path)
    if outcome == "exit":
        assert code == 2, stderr
        assert "Traceback" not in stderr, stderr
        assert stderr.strip() and stderr.strip().count("\n") == 0, stderr
        assert stderr.startswith("depin-gateway: config: "), stderr


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_node_config_mutation_loads_or_names_the_key(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The ``[node]`` section that ``node init`` writes gets the same treatment."""
    from gateway.node.config import load_node_config, render_node_config

    where = tmp_path_factory.getbasetemp()
    keys = tomllib.loads(render_node_config(where / "node-data"))["node"]
    base = {"node": {k: toml_value(v) for k, v in keys.items()}}
    extra = ("public_url", "provider_id", "fleet_broker")
    changes = data.draw(mutations(sorted({("node", k) for k in (*keys, *extra)})))
    path = where / "node-mutated.toml"
    path.write_text(apply(base, changes))
    try:
        config = load_node_config(path)
    except ConfigError as error:
        check_error(error, changes)
    else:
        for name, number in _numbers(config, "node"):
            assert math.isfinite(number) and 0 <= number <= 10**30, (name, number)
        assert config.host and 0 <= config.port <= 65535
