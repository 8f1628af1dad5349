"""Pinned gateway keys: which Ed25519 key the fleet trusts for each gateway id.

A verified heartbeat only proves which key signed it; anyone on the fleet broker can sign a
heartbeat for gateway "pi-17" with a key of their own. Two ways to pin (DESIGN section 7):

- an allow-list (``fleet --keys FILE``), one ``<gateway-id> ed25519:<hex>`` per line, ``#``
  comments: a gateway not listed is UNSIGNED, a listed one signed by another key is KEY CHANGED;
- trust on first use (the default): the first verified key seen for an id is written to a small
  JSON state file (``fleet --pins FILE``); a later key is KEY CHANGED until the operator deletes
  that id's entry (after a deliberate ``rotate-key``, say).

Either way a KEY CHANGED entry keeps only the offending public key, never the body it signed,
so a forged heartbeat never shows counters, never shows as ONLINE or OFFLINE.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from gateway.errors import ConfigError
from gateway.fleet.view import KEY_CHANGED, UNSIGNED, FleetEntry
from gateway.fs import write_atomic
from gateway.keys import parse_gateway_public

__all__ = ["MAX_PINS_FILE", "KeyPins", "default_pins_path", "parse_allow_list"]

MAX_PINS_FILE = 4 * 1024 * 1024  # ~10,000 gateways at ~100 bytes each, with room to spare


def default_pins_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "depin-gateway" / "fleet-pins.json"


def _read_bounded(path: Path, what: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_PINS_FILE + 1)
    except OSError as exc:
        raise ConfigError(what, f"cannot read {path}: {exc.strerror}", "check the path") from None
    if len(data) > MAX_PINS_FILE:
        raise ConfigError(what, f"{path} is over {MAX_PINS_FILE} bytes", "is it the right file?")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ConfigError(what, f"{path} is not UTF-8 text", "is it the right file?") from None


def _checked_key(what: str, where: str, key: str) -> str:
    try:
        parse_gateway_public(key)
    except Exception:  # any malformed key text: one line naming the place
        raise ConfigError(what, f"{where}: {key[:80]!r} is not an ed25519:<hex> key",
                          "copy public_key from depin-gateway status") from None  # fmt: skip
    return key.strip()


def parse_allow_list(text: str, path: str = "--keys") -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigError("--keys", f"{path} line {number}: expected '<gateway-id> <key>'",
                              "one gateway per line, e.g. pi-17 ed25519:<hex>")  # fmt: skip
        pins[parts[0]] = _checked_key("--keys", f"{path} line {number}", parts[1])
    return pins


class KeyPins:
    """Applies pins to classified entries; thread-safe (the fleet server calls it per message)."""

    def __init__(self, pins: Mapping[str, str], state_file: Path | None) -> None:
        self.pins = dict(pins)
        self.state_file = state_file  # None: a fixed allow-list, never written
        self._lock = threading.Lock()

    @classmethod
    def allow_list(cls, path: Path) -> KeyPins:
        return cls(parse_allow_list(_read_bounded(path, "--keys"), str(path)), None)

    @classmethod
    def trust_on_first_use(cls, path: Path) -> KeyPins:
        if not path.exists():
            return cls({}, path)
        try:
            data = json.loads(_read_bounded(path, "--pins"))
            pins = data["pins"] if data.get("version") == 1 else None
        except (ValueError, TypeError, KeyError, AttributeError):
            pins = None
        if not isinstance(pins, dict):
            raise ConfigError("--pins", f"{path} is not a fleet pins file (version 1)",
                              "move it away to start pinning afresh")  # fmt: skip
        return cls({str(k): _checked_key("--pins", str(path), str(v)) for k, v in pins.items()},
                   path)  # fmt: skip

    def apply(self, entry: FleetEntry) -> FleetEntry:
        if entry.state in (UNSIGNED, KEY_CHANGED):
            return entry
        key = str(entry.body.get("public_key"))
        with self._lock:
            pinned = self.pins.get(entry.gateway_id)
            if pinned is None and self.state_file is None:
                return FleetEntry(entry.gateway_id, UNSIGNED, reason="gateway id not in --keys")
            if pinned is None:
                self.pins[entry.gateway_id] = pinned = key
                self._save()
        if key == pinned:
            return dataclasses.replace(entry, pinned_key=pinned)
        reason = f"signed by {key[:24]}.., but the pinned key is {pinned[:24]}.."
        return FleetEntry(entry.gateway_id, KEY_CHANGED, entry.age_s, reason,
                          {"public_key": key}, pinned)  # fmt: skip

    def _save(self) -> None:
        assert self.state_file is not None
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"version": 1, "pins": self.pins}, indent=1, sort_keys=True)
        write_atomic(self.state_file, data.encode() + b"\n")
