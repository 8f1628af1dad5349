"""MQTT username/password and TLS against a real Mosquitto: a throwaway CA made at test time.

The broker has one TLS listener on 127.0.0.1 that requires a client certificate signed by the
test CA and a user name and password from a ``mosquitto_passwd`` file (no anonymous clients).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.config import config_from_string
from gateway.errors import ConfigError
from gateway.testing.broker import Broker
from tests.conftest import ROOT, GatewayProcess, Publisher, restore, write_config

# Both come with the system packages `make test` installs (openssl, mosquitto).
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"

GATEWAY_USER, GATEWAY_PASSWORD = "gateway", "gw-s3cret"
PUBLISHER_USER, PUBLISHER_PASSWORD = "sensor", "pub-s3cret"


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA that signed the server and client certificates
    other_ca: Path  # an unrelated CA: the server certificate does not chain to it
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(directory: Path, *args: str) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=directory, check=True, capture_output=True)


def _make_ca(directory: Path, name: str) -> None:
    _openssl(
        directory,
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip


def _make_leaf(directory: Path, name: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(
        "basicConstraints = critical,CA:FALSE\n"
        "keyUsage = critical,digitalSignature\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid,issuer\n" + extensions
    )
    _openssl(
        directory,
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        directory,
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate (~0.1 s)."""
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    _make_leaf(
        d,
        "server",
        "extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n",
    )
    _make_leaf(d, "client", "extendedKeyUsage = clientAuth\n")
    return Pki(
        d / "ca.crt",
        d / "other-ca.crt",
        d / "server.crt",
        d / "server.key",
        d / "client.crt",
        d / "client.key",
    )


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[Broker]:
    """Mosquitto with TLS + client certificates + password file, no anonymous access."""
    directory = tmp_path / "broker"
    directory.mkdir()
    passwords = directory / "passwd"
    subprocess.run(
        [MOSQUITTO_PASSWD, "-b", "-c", str(passwords), GATEWAY_USER, GATEWAY_PASSWORD], check=True
    )
    subprocess.run(
        [MOSQUITTO_PASSWD, "-b", str(passwords), PUBLISHER_USER, PUBLISHER_PASSWORD], check=True
    )
    extra = (
        f"cafile {pki.ca}\n"
        f"certfile {pki.server_cert}\n"
        f"keyfile {pki.server_key}\n"
        "require_certificate true\n"
        "allow_anonymous false\n"
        f"password_file {passwords}\n"
    )
    with Broker(directory, extra=extra) as running:
        yield running


class TlsPublisher(Publisher):
    """The conftest publisher over TLS with a client certificate and a password."""

    def __init__(self, port: int, pki: Pki) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tls-publisher")
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.username_pw_set(PUBLISHER_USER, PUBLISHER_PASSWORD)
        self.client.tls_set(
            ca_certs=str(pki.ca), certfile=str(pki.client_cert), keyfile=str(pki.client_key)
        )
        refused: list[str] = []
        self.client.on_connect = lambda _c, _u, _f, reason, _p: refused.extend(
            [str(reason)] if reason.is_failure else []
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        deadline = time.monotonic() + 10
        while not self.client.is_connected():
            assert not refused, f"publisher refused: {refused}"
            assert time.monotonic() < deadline, "publisher did not connect"
            time.sleep(0.02)


def _tls_config(
    tmp_path: Path,
    port: int,
    pki: Pki,
    *,
    password: str = GATEWAY_PASSWORD,
    ca: Path | None = None,
    client_cert: bool = True,
) -> Path:
    """A gateway config with TLS and credentials; the password sits in a file next to it."""
    config = write_config(tmp_path, port)
    (tmp_path / "mqtt.password").write_text(password + "\n")
    settings = [
        f'username = "{GATEWAY_USER}"',
        'password_file = "mqtt.password"',  # relative: resolved against the config's directory
        "tls = true",
        f'ca_file = "{ca or pki.ca}"',
    ]
    if client_cert:
        settings += [f'cert_file = "{pki.client_cert}"', f'key_file = "{pki.client_key}"']
    config.write_text(config.read_text().replace("[mqtt]", "[mqtt]\n" + "\n".join(settings)))
    return config


def _mqtt_status(gw: GatewayProcess) -> dict[str, Any]:
    source: dict[str, Any] = gw.status()["sources"]["mqtt"]
    return source


def _wait_for_error(gw: GatewayProcess, timeout: float = 15) -> dict[str, Any]:
    """Start without waiting for a connection; return the mqtt status once it has an error."""
    gw.start(wait=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert gw.process is not None
        assert gw.process.poll() is None, "gateway exited:\n" + gw.log.read_text()[-3000:]
        try:
            mqtt = _mqtt_status(gw)
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        if mqtt["last_error"]:
            return mqtt
        time.sleep(0.05)
    raise AssertionError("no mqtt last_error:\n" + gw.log.read_text()[-3000:])


def _readings(count: int, start: int = 0) -> list[tuple[str, bytes | str]]:
    return [("sensors/tls", json.dumps({"id": i})) for i in range(start, start + count)]


def _ids(config: Path, out: Path) -> list[int]:
    return sorted(json.loads(str(row["payload"]))["id"] for row in restore(config, out))


def test_tls_with_client_certificate_and_password_file_ingests_end_to_end(
    tmp_path: Path,
    tls_broker: Broker,
    pki: Pki,
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    config = _tls_config(tmp_path, tls_broker.port, pki)
    gw = gateway_process(config)
    gw.start()
    mqtt = _mqtt_status(gw)
    assert mqtt["connected"] is True and mqtt["connects"] == 1
    assert mqtt["last_error"] is None
    publisher = TlsPublisher(tls_broker.port, pki)
    publisher.publish_all(_readings(300))
    status = gw.wait_for(lambda s: s["readings_total"] == 300, timeout=20)
    assert status["sources"]["mqtt"]["connected"] is True
    assert "mqtt" not in status["last_error"]
    assert gw.stop() == 0
    assert _ids(config, tmp_path / "out.jsonl") == list(range(300))
    publisher.close()


def test_wrong_password_is_reported_without_crashing_then_fixed(
    tmp_path: Path,
    tls_broker: Broker,
    pki: Pki,
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    config = _tls_config(tmp_path, tls_broker.port, pki, password="not-the-password")
    gw = gateway_process(config)
    mqtt = _wait_for_error(gw)
    assert mqtt["connected"] is False and mqtt["connects"] == 0
    error = mqtt["last_error"].lower()
    assert "refused" in error
    assert "not authorized" in error or "bad user name or password" in error, error
    time.sleep(1.5)  # it keeps retrying (reconnect_max = 1s) and stays up
    assert gw.process is not None and gw.process.poll() is None
    again = _mqtt_status(gw)
    assert again["connected"] is False
    assert again["last_error"] == mqtt["last_error"], "the refusal is not masked by the close"
    assert gw.stop() == 0

    (tmp_path / "mqtt.password").write_text(GATEWAY_PASSWORD + "\n")
    gw.start()
    publisher = TlsPublisher(tls_broker.port, pki)
    publisher.publish_all(_readings(50))
    gw.wait_for(lambda s: s["readings_total"] == 50, timeout=20)
    assert gw.stop() == 0
    assert _ids(config, tmp_path / "out.jsonl") == list(range(50))
    publisher.close()


def test_untrusted_server_certificate_is_reported_and_nothing_is_acked(
    tmp_path: Path,
    tls_broker: Broker,
    pki: Pki,
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    config = _tls_config(tmp_path, tls_broker.port, pki)
    good = config.read_text()
    gw = gateway_process(config)
    gw.start()  # creates the persistent session, so the broker queues for it from now on
    assert gw.stop() == 0
    publisher = TlsPublisher(tls_broker.port, pki)
    publisher.publish_all(_readings(100))

    config.write_text(good.replace(f'ca_file = "{pki.ca}"', f'ca_file = "{pki.other_ca}"'))
    mqtt = _wait_for_error(gw)
    assert mqtt["connected"] is False and mqtt["connects"] == 0 and mqtt["received"] == 0
    assert "certificate verify failed" in mqtt["last_error"], mqtt["last_error"]
    assert f"127.0.0.1:{tls_broker.port}" in mqtt["last_error"]
    assert gw.status()["readings_total"] == 0
    assert gw.stop() == 0

    config.write_text(good)  # the broker still holds all 100: none was acked by the bad run
    gw.start()
    gw.wait_for(lambda s: s["readings_total"] == 100, timeout=20)
    assert gw.stop() == 0
    assert _ids(config, tmp_path / "out.jsonl") == list(range(100))
    publisher.close()


def test_missing_client_certificate_is_refused_by_the_broker(
    tmp_path: Path,
    tls_broker: Broker,
    pki: Pki,
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    config = _tls_config(tmp_path, tls_broker.port, pki, client_cert=False)
    gw = gateway_process(config)
    mqtt = _wait_for_error(gw)
    assert mqtt["connected"] is False and mqtt["connects"] == 0
    # TLS 1.3: the handshake completes on our side, the broker's alert closes the connection
    # before any CONNACK, and paho reports no more than that.
    assert "closed before the broker accepted it" in mqtt["last_error"], mqtt["last_error"]
    assert (
        "peer did not return a certificate" in (tls_broker.directory / "mosquitto.log").read_text()
    )
    assert gw.stop() == 0


def _run(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )


def test_password_and_password_file_together_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x\n")
    text = '[mqtt]\nusername = "u"\npassword = "x"\npassword_file = "pw"\n[owner]\n'
    with pytest.raises(ConfigError) as caught:
        config_from_string(text, tmp_path / "gateway.toml")
    assert caught.value.key == "mqtt.password_file"
    config = write_config(tmp_path, 1883)
    config.write_text(
        config.read_text().replace(
            "[mqtt]", '[mqtt]\nusername = "u"\npassword = "x"\npassword_file = "pw"'
        )
    )
    result = _run(config)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "depin-gateway: config: mqtt.password_file: both password and password_file are set"
        " (keep only one)"
    ]


@pytest.mark.parametrize("key", ["password", "password_file"])
def test_password_without_username_is_a_config_error(tmp_path: Path, key: str) -> None:
    (tmp_path / "pw").write_text("x\n")
    value = "pw" if key == "password_file" else "x"
    with pytest.raises(ConfigError, match=r"without mqtt\.username") as caught:
        config_from_string(f'[mqtt]\n{key} = "{value}"\n', tmp_path / "gateway.toml")
    assert caught.value.key == f"mqtt.{key}"


@pytest.mark.parametrize("key", ["ca_file", "cert_file", "key_file"])
def test_unreadable_tls_file_is_a_one_line_config_error_naming_its_key(
    tmp_path: Path, pki: Pki, key: str
) -> None:
    config = _tls_config(tmp_path, 1883, pki)
    current = {"ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key}[key]
    missing = tmp_path / "missing.pem"
    config.write_text(config.read_text().replace(f'"{current}"', f'"{missing}"'))
    result = _run(config)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"depin-gateway: config: mqtt.{key}: "), lines[0]
    assert str(missing) in lines[0]
