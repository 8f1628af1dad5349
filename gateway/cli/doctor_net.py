"""The doctor's network checks: the MQTT broker and its session queue, storage nodes, the chain.

The broker's queue limit is measured, not read from its config: a throwaway persistent session
subscribes, goes away, ``PROBE_MESSAGES`` QoS 1 messages are published to it, and the session
comes back to count what the broker kept. Reading /etc/mosquitto would miss a remote or
clustered broker, a config we may not read, an include or an override later in the file; the
probe measures what the broker actually does for the gateway's own kind of session (Mosquitto's
default ``max_queued_messages 1000`` keeps 1000 and drops the rest). The probe session is
removed at the end (a clean-session connect with the same client id).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from typing import TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.cli.doctor_checks import (
    FAIL,
    PASS,
    SKIP,
    Check,
    ServiceUser,
    check_clock,
    check_disk,
    check_keys,
    check_serial,
)
from gateway.config import Config

__all__ = [
    "PROBE_MESSAGES",
    "check_broker",
    "check_chain",
    "check_storage",
    "probe_queue",
    "run_doctor",
]

PROBE_MESSAGES = 1200  # past Mosquitto's default limit of 1000, with a margin
_DROPIN = "/etc/mosquitto/conf.d/depin-gateway.conf"


def _client(config: Config, client_id: str, clean: bool) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    m = config.mqtt
    if m.username is not None:
        client.username_pw_set(m.username, m.password)
    if m.tls:
        client.tls_set(
            ca_certs=str(m.ca_file) if m.ca_file else None,
            certfile=str(m.cert_file) if m.cert_file else None,
            keyfile=str(m.key_file) if m.key_file else None,
        )
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    return client


def _connect(client: mqtt.Client, config: Config, timeout: float = 5.0) -> None:
    connected = threading.Event()
    failure: list[str] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            failure.append(str(reason))
        connected.set()

    client.on_connect = on_connect
    client.connect(config.mqtt.host, config.mqtt.port, keepalive=30)
    client.loop_start()
    if not connected.wait(timeout):
        raise OSError("no CONNACK")
    if failure:
        raise OSError(f"refused: {failure[0]}")


def _close(client: mqtt.Client) -> None:
    with contextlib.suppress(Exception):
        client.disconnect()
    client.loop_stop()


def probe_queue(config: Config, count: int = PROBE_MESSAGES, timeout: float = 20.0) -> int:
    """How many of ``count`` QoS 1 messages a broker keeps for an offline persistent session."""
    client_id = f"depin-doctor-{os.getpid()}-{time.time_ns()}"
    topic = f"depin/doctor/{client_id}"
    received = [0]
    last = [time.monotonic()]
    subscriber = _client(config, client_id, clean=False)
    subscribed = threading.Event()
    subscriber.on_subscribe = lambda *_a: subscribed.set()
    _connect(subscriber, config)
    subscriber.subscribe(topic, qos=1)
    if not subscribed.wait(5):
        _close(subscriber)
        raise OSError("subscription not acknowledged")
    _close(subscriber)
    publisher = _client(config, client_id + "-pub", clean=True)
    try:
        _connect(publisher, config)
        infos = [publisher.publish(topic, b"x", qos=1) for _ in range(count)]
        for info in infos:
            info.wait_for_publish(timeout)
    finally:
        _close(publisher)

    def on_message(*_args: object) -> None:
        received[0] += 1
        last[0] = time.monotonic()

    again = _client(config, client_id, clean=False)
    again.on_message = on_message
    try:
        _connect(again, config)
        last[0] = time.monotonic()
        deadline = time.monotonic() + timeout
        while received[0] < count and time.monotonic() < deadline:
            if time.monotonic() - last[0] > 2.0:  # the broker has sent all it kept
                break
            time.sleep(0.05)
    finally:
        _close(again)
        with contextlib.suppress(Exception):  # drop the probe's session from the broker
            cleanup = _client(config, client_id, clean=True)
            _connect(cleanup, config)
            _close(cleanup)
    return received[0]


def check_broker(config: Config, probe: bool = True) -> list[Check]:
    where = f"{config.mqtt.host}:{config.mqtt.port}"
    if not config.mqtt.enabled:
        return [Check("broker", SKIP, "[mqtt] is disabled")]
    client = _client(config, f"depin-doctor-ping-{os.getpid()}", clean=True)
    try:
        _connect(client, config)
    except (OSError, ValueError) as exc:
        return [
            Check(
                "broker",
                FAIL,
                f"cannot connect to {where}: {exc}",
                "start the broker (systemctl start mosquitto) or fix [mqtt] host/port",
            )
        ]
    finally:
        _close(client)
    checks = [Check("broker", PASS, f"connected to {where}")]
    if not probe:
        return checks
    kept = probe_queue(config)
    if kept < PROBE_MESSAGES:
        checks.append(Check("broker-queue", FAIL,
                            f"the broker kept {kept} of {PROBE_MESSAGES} messages for an offline "
                            "session: readings sent while the gateway restarts are lost",
                            f"install systemd/mosquitto-depin.conf as {_DROPIN} "
                            "(max_queued_messages 0) and restart mosquitto"))  # fmt: skip
    else:
        checks.append(
            Check(
                "broker-queue", PASS, f"an offline session kept all {PROBE_MESSAGES} probe messages"
            )
        )
    return checks


def _http_ok(url: str, timeout: float = 5.0) -> str | None:
    """None when ``url`` answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s) only)
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


def check_storage(config: Config, http_ok: Callable[[str], str | None] = _http_ok) -> list[Check]:
    if not config.storage.nodes:
        return [Check("storage", SKIP, "no [storage] nodes configured")]
    checks = []
    for node in config.storage.nodes:
        problem = http_ok(node.rstrip("/") + "/status")
        if problem is None:
            checks.append(Check("storage", PASS, f"{node} answers"))
        else:
            checks.append(Check("storage", FAIL, f"{node}: {problem}",
                                "check the node is running and reachable, or remove it from "
                                "[storage] nodes"))  # fmt: skip
    return checks


def check_chain(config: Config, rpc: str | None) -> list[Check]:
    from gateway.chain.jsonrpc import RpcClient

    if rpc is None:
        return [Check("chain", SKIP, "no chain RPC given (--rpc URL)")]
    client = RpcClient(rpc, timeout=5.0, attempts=1)
    try:
        chain_id = client.chain_id()
    except Exception as exc:  # every RPC failure (unreachable, bad reply) is this check's FAIL
        return [Check("chain", FAIL, f"{rpc}: {exc}", "check the RPC URL and the network")]
    checks = [Check("chain", PASS, f"{rpc} answers (chain id {chain_id})")]
    wallet_path = config.state_dir / "wallet.key"
    if not wallet_path.exists():
        return [*checks, Check("wallet", SKIP, f"no wallet in {config.state_dir}")]
    from gateway.keys.wallet import load_wallet

    address = load_wallet(wallet_path).address
    balance = client.get_balance(address)
    if balance == 0:
        return [
            *checks,
            Check(
                "wallet",
                FAIL,
                f"{address} holds no FIL: it cannot pay gas",
                f"send FIL to {address} (depin-gateway wallet address)",
            ),
        ]
    return [*checks, Check("wallet", PASS, f"{address} holds {balance} attoFIL")]


def _guarded(name: str, run: Callable[[], Iterable[Check]]) -> list[Check]:
    try:
        return list(run())
    except Exception as exc:  # a bug or surprise in one check must not hide the others
        return [Check(name, FAIL, f"check crashed: {type(exc).__name__}: {exc}",
                      "report this with the line above")]  # fmt: skip


def run_doctor(config: Config, user: ServiceUser, out: TextIO, *, skip: Sequence[str] = (),
               rpc: str | None = None, probe: bool = True) -> int:  # fmt: skip
    groups: list[tuple[str, Callable[[], Iterable[Check]]]] = [
        ("broker", lambda: check_broker(config, probe=probe and "broker-queue" not in skip)),
        ("disk", lambda: [check_disk(config)]),
        ("clock", lambda: [check_clock()]),
        ("serial", lambda: check_serial(config, user)),
        ("keys", lambda: check_keys(config, user)),
        ("storage", lambda: check_storage(config)),
        ("chain", lambda: check_chain(config, rpc)),
    ]
    failed = 0
    for name, run in groups:
        if name in skip:
            print(Check(name, SKIP, "skipped (--skip)").line(), file=out)
            continue
        for found in _guarded(name, run):
            check = Check(found.name, SKIP, "skipped (--skip)") if found.name in skip else found
            failed += check.status == FAIL
            print(check.line(), file=out, flush=True)
    print(f"doctor: {failed} problem(s)" if failed else "doctor: all checks passed", file=out)
    return 1 if failed else 0
