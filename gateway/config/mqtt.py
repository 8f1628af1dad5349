"""The ``[mqtt]`` section: broker address, subscriptions, session and MQTT 5 limits.

Every number is held to the field it fills on the wire (MQTT 5 section numbers in
``gateway.config_checks``), because paho raises inside its network thread for a value that
does not fit, and that thread dying silently is how ingest stopped while status looked fine.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config.checks import (
    MQTT_MAX_KEEPALIVE,
    MQTT_MAX_PACKET,
    MQTT_MAX_SESSION_EXPIRY,
    check_host,
    check_mqtt_string,
    check_path,
)
from gateway.config.model import PAYLOAD_FORMATS, MqttConfig, TopicRule
from gateway.config.table import Table
from gateway.errors import ConfigError

__all__ = ["check_filter", "mqtt_section"]

_KEYS = (
    "enabled",
    "host",
    "port",
    "client_id",
    "topics",
    "qos",
    "keepalive",
    "session_expiry",
    "receive_maximum",
    "max_payload",
    "quarantine_size",
    "username",
    "password",
    "password_file",
    "tls",
    "ca_file",
    "cert_file",
    "key_file",
    "reconnect_min",
    "reconnect_max",
    "client",
)
# "builtin": our MQTT 5 client (gateway/ingest/mqtt.py); "paho": paho-mqtt, kept as a fallback.
# QoS 2 stays QoS 1 on the wire with paho (it answers PUBREC before the message is durable).
MQTT_CLIENTS = ("builtin", "paho")
_MAX_TOPICS = 1024
_TOPICS_EXAMPLE = 'e.g. topics = ["sensors/#"] or [{filter = "sensors/#", format = "json"}]'


def _topic_rules(t: Table) -> tuple[TopicRule, ...]:
    raw = t.data.get("topics", ["sensors/#"])
    if not isinstance(raw, list) or not raw or len(raw) > _MAX_TOPICS:
        problem = f"expected a non-empty list of at most {_MAX_TOPICS} filters"
        raise ConfigError(t.key("topics"), problem, _TOPICS_EXAMPLE)
    rules = []
    for index, item in enumerate(raw):
        where = f"{t.key('topics')}[{index}]"
        rule = Table(
            where, {"filter": item} if isinstance(item, str) else item, ("filter", "format")
        )
        topic_filter = rule.string("filter", "")
        check_filter(rule.key("filter"), topic_filter)
        fmt = rule.string("format", "any")
        if fmt not in PAYLOAD_FORMATS:
            raise ConfigError(
                rule.key("format"),
                f"unknown format {fmt[:20]!r}",
                "use one of: " + ", ".join(PAYLOAD_FORMATS),
            )
        rules.append(TopicRule(topic_filter, fmt))
    return tuple(rules)


def check_filter(key: str, topic_filter: str) -> None:
    """MQTT 3.1.1 section 4.7: '#' only last and alone in its level, '+' alone in its level."""
    check_mqtt_string(key, topic_filter)
    levels = topic_filter.split("/")
    ok = True
    for position, level in enumerate(levels):
        if "#" in level and (level != "#" or position != len(levels) - 1):
            ok = False
        if "+" in level and level != "+":
            ok = False
    if not ok or not topic_filter:
        raise ConfigError(
            key,
            f"{topic_filter[:60]!r} is not a valid MQTT topic filter",
            "'#' must be last and alone in its level, '+' alone in its level",
        )


def _password(t: Table, base: Path) -> str | None:
    password = t.optional_string("password")
    password_file = t.optional_string("password_file")
    if password_file is not None:
        if password is not None:
            raise ConfigError(
                t.key("password_file"), "both password and password_file are set", "keep only one"
            )
        try:
            password = check_path(t.key("password_file"), password_file, base).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(
                t.key("password_file"),
                f"cannot read {password_file}: {reason}",
                "check the path and its permissions",
            ) from None
        check_mqtt_string(t.key("password_file"), password)
    if password is not None and t.optional_string("username") is None:
        raise ConfigError(
            t.key("password" if password_file is None else "password_file"),
            "is set without mqtt.username, so it would never be sent",
            'add username = "..."',
        )
    return password


def _tls_paths(t: Table, base: Path, tls: bool) -> tuple[Path | None, Path | None, Path | None]:
    paths: dict[str, Path | None] = {}
    for name in ("ca_file", "cert_file", "key_file"):
        if not tls and name in t.data:
            raise ConfigError(t.key(name), "is set but tls is false (plaintext connection)",
                              "set tls = true, or remove the key")  # fmt: skip
        value = t.optional_string(name)
        paths[name] = None if value is None else check_path(t.key(name), value, base)
    return paths["ca_file"], paths["cert_file"], paths["key_file"]


def mqtt_section(root: Table, gateway_id: str, base: Path) -> MqttConfig:
    t = root.table("mqtt", _KEYS)
    password = _password(t, base)
    username = t.optional_string("username")
    reconnect_min = t.duration("reconnect_min", "1s", minimum=0.01, maximum=3600)
    tls = t.boolean("tls", False)
    ca_file, cert_file, key_file = _tls_paths(t, base, tls)
    host = check_host(t.key("host"), t.string("host", "127.0.0.1"), 'host = "127.0.0.1"')
    client_id = t.string("client_id", f"depin-gateway-{gateway_id}")
    if not client_id:
        raise ConfigError(t.key("client_id"), "is empty", "the broker keeps our session by it")
    client = t.string("client", "builtin")
    if client not in MQTT_CLIENTS:
        raise ConfigError(t.key("client"), f"unknown MQTT client {client[:20]!r}",
                          "use one of: " + ", ".join(MQTT_CLIENTS))  # fmt: skip
    return MqttConfig(
        enabled=t.boolean("enabled", True),
        host=host,
        port=t.integer("port", 1883, 1, 65535),
        client_id=check_mqtt_string(t.key("client_id"), client_id),
        topics=_topic_rules(t),
        qos=t.integer("qos", 1, 1, 2),
        keepalive=int(t.duration("keepalive", "30s", minimum=5, maximum=MQTT_MAX_KEEPALIVE)),
        session_expiry=int(
            t.duration("session_expiry", "7d", minimum=60, maximum=MQTT_MAX_SESSION_EXPIRY)
        ),
        receive_maximum=t.integer("receive_maximum", 1000, 1, 65535),
        max_payload=t.size("max_payload", "256KiB", minimum=16, maximum=MQTT_MAX_PACKET),
        quarantine_size=t.size("quarantine_size", "16MiB", minimum=0),
        username=None if username is None else check_mqtt_string(t.key("username"), username),
        password=password,
        tls=tls,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        reconnect_min=reconnect_min,
        reconnect_max=max(
            reconnect_min, t.duration("reconnect_max", "30s", minimum=0.01, maximum=86400)
        ),
        client=client,
    )
