"""Range and syntax checks shared by the gateway and node configs (and the CLI's arguments).

Every limit a library or the wire would enforce later is enforced here first, so a value that
loads is a value that works. Each check raises ``ConfigError`` naming the key and the allowed
range. Limits cite their source.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from gateway.errors import ConfigError

__all__ = [
    "MAX_DURATION",
    "MAX_SIZE",
    "MQTT_MAX_KEEPALIVE",
    "MQTT_MAX_PACKET",
    "MQTT_MAX_SESSION_EXPIRY",
    "MQTT_MAX_STRING",
    "check_gateway_id",
    "check_host",
    "check_mqtt_string",
    "check_path",
    "parse_host_port",
    "parse_http_url",
    "parse_mqtt_url",
]

#: MQTT 5 §1.5.4: a UTF-8 string is length-prefixed by two bytes; U+0000 is not allowed.
MQTT_MAX_STRING = 65535
#: MQTT 5 §3.1.2.10: Keep Alive is a two-byte integer of seconds.
MQTT_MAX_KEEPALIVE = 65535
#: MQTT 5 §3.1.2.11.2: Session Expiry Interval is a four-byte integer of seconds.
MQTT_MAX_SESSION_EXPIRY = 2**32 - 1
#: MQTT 5 §1.5.5 / §2.1.4: the largest Remaining Length a variable byte integer can encode.
MQTT_MAX_PACKET = 268_435_455
#: Ten years. Far beyond any sensible interval, and far below ``threading.TIMEOUT_MAX``
#: (about 292 years on Linux), past which ``Event.wait`` raises OverflowError.
MAX_DURATION = 10 * 365 * 86400.0
#: 1 PiB: beyond any disk a gateway has, and well inside the 64-bit offsets of os calls.
MAX_SIZE = 2**50
#: Linux PATH_MAX and NAME_MAX (limits.h), in bytes.
_PATH_MAX, _NAME_MAX = 4096, 255
#: RFC 1035 §2.3.4: 253 characters in a name, 63 in a label. Underscores are allowed
#: because Docker and mDNS names use them and getaddrinfo resolves them.
_HOST_MAX = 253
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_GATEWAY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_gateway_id(key: str, value: str) -> str:
    """An id that is one MQTT topic level and short enough for client ids and file names."""
    if not _GATEWAY_ID.fullmatch(value):
        raise ConfigError(
            key,
            f"{value[:40]!r} cannot be used as a gateway id (it goes into MQTT topics)",
            "use 1 to 64 letters, digits, '-' and '_'",
        )
    return value


def check_host(key: str, host: str, example: str) -> str:
    """A host name (RFC 1123 labels) or an IPv4/IPv6 literal; never empty."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host
    labels = host.removesuffix(".").split(".")
    if not host or len(host) > _HOST_MAX or not all(_LABEL.fullmatch(label) for label in labels):
        shown = repr(host[:40]) if host else "an empty string"
        raise ConfigError(key, f"{shown} is not a host name or IP address", f"e.g. {example}")
    return host


def _port(key: str, text: str, example: str, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if not (text.isascii() and text.isdigit() and len(text) <= 5 and low <= int(text) <= 65535):
        raise ConfigError(key, f"port {text[:20]!r} is not {low}..65535", f"e.g. {example}")
    return int(text)


def parse_host_port(key: str, text: str, example: str, allow_zero: bool = False) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` with a port of 1..65535 (0 = any free one, if allowed)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(key, f"{text[:60]!r} is not host:port", f"e.g. {example}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(key, f"{host[:40]!r} is not an IPv6 address", example) from None
    elif ":" in host:
        raise ConfigError(key, "an IPv6 address needs brackets", "e.g. [::1]:8787")
    return check_host(key, host, example), _port(key, port, example, allow_zero)


def _url(key: str, url: str, schemes: tuple[str, ...], example: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in schemes or not parts.hostname or port in (-1, 0):
        raise ConfigError(
            key,
            f"{url[:60]!r} is not {schemes[0]}://host:port with a port of 1..65535",
            f"e.g. {example}",
        )
    check_host(key, parts.hostname, example)
    return parts.scheme, parts.hostname, port or 0


def parse_mqtt_url(key: str, url: str) -> tuple[str, int]:
    """``mqtt://host[:port]`` (``tcp://`` too, as paho spells it); port 1883 by default."""
    _, host, port = _url(key, url, ("mqtt", "tcp"), '"mqtt://fleet.example.net:1883"')
    return host, port or 1883


def parse_http_url(key: str, url: str) -> str:
    """An http(s) URL of a storage node, without a trailing slash."""
    _url(key, url, ("http", "https"), '"http://127.0.0.1:8900"')
    return url.rstrip("/")


def check_mqtt_string(key: str, value: str) -> str:
    """Fits an MQTT UTF-8 string field: at most 65,535 bytes, no U+0000."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MQTT_MAX_STRING or "\0" in value:
        raise ConfigError(
            key, f"is {size} bytes" if size > MQTT_MAX_STRING else "contains a NUL character",
            f"MQTT allows at most {MQTT_MAX_STRING} bytes without NUL",
        )  # fmt: skip
    return value


def check_path(key: str, text: str, base: Path) -> Path:
    """A path: no NUL, within PATH_MAX/NAME_MAX, ``~user`` expanded, relative to ``base``."""
    if not text:
        raise ConfigError(key, "is empty", "give a path")
    if "\0" in text:
        raise ConfigError(key, "contains a NUL character", "remove it")
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes from argv: a TOML config cannot hold them
        raise ConfigError(key, "is not valid UTF-8", "use a path that is valid UTF-8") from None
    if len(raw) >= _PATH_MAX or any(len(part) > _NAME_MAX for part in raw.split(b"/")):
        raise ConfigError(
            key, "is too long", f"a path is < {_PATH_MAX} bytes, each name <= {_NAME_MAX} bytes"
        )
    try:
        path = Path(text).expanduser()
    except (RuntimeError, KeyError):  # 3.11 raises RuntimeError for an unknown ~user
        user = text.split("/", 1)[0]
        raise ConfigError(key, f"{user!r}: no such user", "write the full path") from None
    return path if path.is_absolute() else base / path
