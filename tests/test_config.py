"""A bad config never starts a half-working daemon: one clear line naming the key, non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import config_from_string
from gateway.errors import ConfigError
from gateway.units import parse_duration, parse_size

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_valid_and_normalised() -> None:
    config = config_from_string("")
    assert config.mqtt.topics[0].filter == "sensors/#"
    assert config.spool.commit_interval == 0.01
    assert config.gateway.disk_budget == 512 * 1024 * 1024
    assert config.mqtt.session_expiry == 7 * 86400


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        ("[gateway]\nstat_dir = '/x'", "gateway.stat_dir", "did you mean 'state_dir'"),
        ("[mqtt]\nport = 'x'", "mqtt.port", "expected an integer"),
        ("[mqtt]\nport = 70000", "mqtt.port", "use 1..65535"),
        ("[mqtt]\nqos = 0", "mqtt.qos", "use 1..2"),
        ("[mqtt]\ntopics = ['a/#/b']", "mqtt.topics[0].filter", "'#' must be last"),
        ("[mqtt]\ntopics = [{filter = 'a', format = 'xml'}]", "mqtt.topics[0].format", "json"),
        ("[spool]\ncommit_interval = '5 parsecs'", "spool.commit_interval", '"10ms"'),
        ("[gateway]\ndisk_budget = 'lots'", "gateway.disk_budget", '"512MiB"'),
        ("[gateway]\nlow_watermark = 0.99", "gateway.low_watermark", "below"),
        ("[owner]\npublic_keys = ['x25519:zz']", "owner.public_keys[0]", "owner-key"),
        ("[[serial]]\nport = '/dev/a'\ndriver = 'pms9999'", "serial[0].driver", "pms5003"),
        ("[[serial]]\nport = '/dev/a'\ndriver = 'pms5003'\noptions = {mode = 'x'}",
         "serial[0].options.mode", "passive"),
        ("[[serial]]\nport = '/dev/a'\ndriver = 'nmea'\n" * 2, "serial.serial1.port",
         "one driver per port"),
        ("[mqtt]\nenabled = false", "mqtt.enabled", "[[serial]]"),
        ("[status]\nlisten = 'localhost'", "status.listen", "host:port"),
        ("[mqtt]\nca_file = 'ca.pem'", "mqtt.ca_file", "tls = true"),
        ("nonsense = [", "", "not valid TOML"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key_and_the_fix(text: str, key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_string(text)
    assert info.value.key == key
    assert hint in str(info.value)


def test_cli_reports_a_bad_config_in_one_line_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[mqtt]\nport = 'not a port'\n")
    for command in (["run"], ["status"], ["restore", "--out", str(tmp_path / "o")]):
        result = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *command, "--config", str(config)],
            capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        assert result.returncode == 2
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "mqtt.port" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_missing_config_says_how_to_create_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(tmp_path / "none.toml")],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "depin-gateway init" in result.stderr


@given(st.integers(0, 10**6), st.sampled_from(["ns", "us", "ms", "s", "m", "h", "d"]))
def test_duration_units(value: int, unit: str) -> None:
    factor = {"ns": 1e-9, "us": 1e-6, "ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{value}{unit}") == pytest.approx(value * factor)


@given(st.integers(0, 10**6), st.sampled_from(["", "B", "kB", "KiB", "MB", "MiB", "GiB"]))
def test_size_units(value: int, unit: str) -> None:
    factor = {"": 1, "B": 1, "kB": 1000, "KiB": 1024, "MB": 10**6, "MiB": 2**20, "GiB": 2**30}[unit]
    assert parse_size(f"{value}{unit}") == value * factor


@given(st.text(max_size=20))
def test_duration_parser_never_crashes(text: str) -> None:
    try:
        assert parse_duration(text) >= 0
    except ValueError:
        pass


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        ("[spool]\ncommit_interval = nan", "spool.commit_interval", "finite"),
        ("[spool]\ncommit_interval = inf", "spool.commit_interval", "finite"),
        ("[spool]\ncommit_interval = '99999999999999d'", "spool.commit_interval", "0s..10s"),
        ("[spool]\ncommit_interval = '11s'", "spool.commit_interval", "0s..10s"),
        ("[spool]\ncommit_interval = -1", "spool.commit_interval", "non-negative"),
        ("[mqtt]\nsession_expiry = nan", "mqtt.session_expiry", "finite"),
        ("[mqtt]\nsession_expiry = 4294967296", "mqtt.session_expiry", "60..4294967295 seconds"),
        ("[mqtt]\nkeepalive = 65536", "mqtt.keepalive", "5..65535 seconds"),
        ("[mqtt]\nclient_id = '" + "x" * 65536 + "'", "mqtt.client_id", "65535"),
        ("[mqtt]\ntopics = ['" + "a" * 65536 + "']", "mqtt.topics[0].filter", "65535"),
        ("[mqtt]\nhost = ''", "mqtt.host", "not a host name"),
        ("[mqtt]\nhost = 'a b'", "mqtt.host", "not a host name"),
        ("[mqtt]\nmax_payload = '1GiB'", "mqtt.max_payload", "268435455"),
        ("[gateway]\nhigh_watermark = nan", "gateway.high_watermark", "0.1..1.0"),
        ("[gateway]\ndisk_budget = 4.5", "gateway.disk_budget", "got a float"),
        ("[gateway]\ndisk_budget = [1]", "gateway.disk_budget", "got a list"),
        ("[gateway]\ndisk_budget = '" + "9" * 5000 + "'", "gateway.disk_budget", "characters"),
        ("[gateway]\ndisk_budget = '" + "9" * 60 + "GiB'", "gateway.disk_budget", "65536.."),
        ("[gateway]\ndisk_budget = 18446744073709551616", "gateway.disk_budget", "out of range"),
        ("[batch]\nmax_age = '1" + "0" * 400 + "s'", "batch.max_age", "characters"),
        ('[gateway]\nstate_dir = "a\\u0000b"', "gateway.state_dir", "NUL"),
        ("[gateway]\nstate_dir = '~nosuchuser/x'", "gateway.state_dir", "no such user"),
        ("[gateway]\nid = 'a/b#'", "gateway.id", "letters, digits"),
        ("[mqtt]\nquarantine_size = '1GiB'", "mqtt.quarantine_size", "disk_budget"),
        ("[gateway]\nid = '" + "a" * 65 + "'", "gateway.id", "1 to 64"),
        ("[status]\nlisten = ':8787'", "status.listen", "host:port"),
        ("[status]\nlisten = '127.0.0.1:99999'", "status.listen", "1..65535"),
        ("[status]\nlisten = '::1:80'", "status.listen", "brackets"),
        ("[fleet]\nbroker = 'mqtt://h:99999'", "fleet.broker", "1..65535"),
        ("[fleet]\nbroker = 'mqtt://:1883'", "fleet.broker", "mqtt://host:port"),
        ("[storage]\nnodes = ['http://h:0']", "storage.nodes[0]", "http://host:port"),
        ("[[serial]]\nport = '/dev/a'\ndriver = 'nmea'\noptions = {x = [[1]]}",
         "serial[0].options.x", "string, number or boolean"),
        ("a = " + "[" * 5000 + "]" * 5000, "", "nested too deeply"),
        ("a = " + "9" * 5000, "", "smaller number"),
        ('[gateway]\n"a\\nb" = 1', "gateway.a\nb", "unknown key"),
    ],
)  # fmt: skip
def test_extreme_values_are_one_line_errors_naming_the_key_and_range(
    text: str, key: str, hint: str
) -> None:
    """Issue 8 items 5, 6 and 11: NaN, inf, huge, NUL, deep and empty values never load."""
    with pytest.raises(ConfigError) as info:
        config_from_string(text)
    assert info.value.key == key
    assert hint in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_limits_at_the_protocol_maximum_still_load() -> None:
    config = config_from_string(
        "[mqtt]\nkeepalive = 65535\nsession_expiry = 4294967295\nhost = '::1'\n"
        "client_id = '" + "c" * 65535 + "'\n[spool]\ncommit_interval = '10s'\n"
        "[status]\nlisten = '[::1]:8787'\n[fleet]\nbroker = 'mqtt://fleet.example.net'"
    )
    assert config.mqtt.keepalive == 65535 and config.mqtt.session_expiry == 2**32 - 1
    assert config.status.host == "::1" and config.status.port == 8787
    assert config.spool.commit_interval == 10.0
