"""Checks for command-line arguments and the run preflight: one ``ConfigError`` naming the
argument (``--out``) and the fix, before anything is written or started.

Paths are checked up front because the alternative is an ``OSError`` from deep inside a command,
after part of its output exists. argparse ``type=`` functions raise ``ArgumentTypeError`` so the
parser names the argument itself.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import socket
from pathlib import Path

from gateway.config.checks import check_gateway_id, check_path, parse_host_port
from gateway.errors import ConfigError

__all__ = [
    "check_dir_arg",
    "check_listen_free",
    "ensure_dir",
    "finite_positive",
    "gateway_id_arg",
    "out_file",
    "port_number",
    "preflight_run",
]


def finite_positive(text: str) -> float:
    """argparse type: a finite number > 0 (``--rate``, ``--duration``, ``--stale``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > 1e9:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number in (0, 1e9], e.g. 60")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1..65535."""
    if not (text.isascii() and text.isdigit() and len(text) <= 5 and 1 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a port 1..65535")
    return int(text)


def gateway_id_arg(text: str) -> str:
    """argparse type: a gateway id that the config written with it will accept."""
    try:
        return check_gateway_id("--id", text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"{exc.problem} ({exc.fix})") from None


def _path(argument: str, text: str) -> Path:
    return check_path(argument, text, Path.cwd())


def out_file(argument: str, text: str) -> Path:
    """A file to create or replace: not a directory, in a directory that exists."""
    path = _path(argument, text)
    if path.is_dir():
        raise ConfigError(argument, f"{text} is a directory", "give a file name inside it")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ConfigError(argument, f"{parent} {what}", "create the directory first")
    if not os.access(parent, os.W_OK):
        raise ConfigError(argument, f"{parent} is not writable", "choose another directory")
    return path


def ensure_dir(argument: str, text: str | Path, mode: int = 0o700) -> Path:
    """A directory that exists afterwards (created with its parents), or a ConfigError."""
    path = _path(argument, str(text))
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except FileExistsError:
        raise ConfigError(argument, f"{path} is a file", "give a directory") from None
    except OSError as exc:
        raise ConfigError(argument, f"cannot create {path}: {exc.strerror}",
                          "choose a directory you can write") from None  # fmt: skip
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(argument, f"{path} is not writable", "choose a directory you can write")
    return path


def check_listen_free(key: str, listen: str, allow_zero: bool = False) -> None:
    """Resolve and bind ``listen`` once, as the server will, so a busy port or a name that does
    not resolve is a config error before anything starts, not an OSError after."""
    host, port = parse_host_port(key, listen, '"127.0.0.1:8787"', allow_zero)
    fix = "choose a free port and an address of this host"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(key, f"cannot resolve {host!r}: {exc}", fix) from None
    for family, kind, proto, _, address in infos:
        with contextlib.closing(socket.socket(family, kind, proto)) as sock:
            # asyncio's create_server sets SO_REUSEADDR too: a port in TIME_WAIT is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise ConfigError(key, f"cannot listen on {listen}: {exc.strerror}", fix) from None


def preflight_run(config_path: Path | None, state_dir: Path, listen: str) -> None:
    """What ``run`` needs from the host before it starts anything. The state directory is not
    created here: without the identity init puts in it the daemon could not start anyway."""
    if state_dir.exists() and not state_dir.is_dir():
        raise ConfigError("gateway.state_dir", f"{state_dir} is not a directory", "fix the path")
    if state_dir.is_dir() and not os.access(state_dir, os.W_OK | os.X_OK):
        raise ConfigError("gateway.state_dir", f"{state_dir} is not writable",
                          "run as the user that owns it, or fix its permissions")  # fmt: skip
    if not (state_dir / "identity.key").exists():
        raise ConfigError(
            "gateway.state_dir",
            f"no identity key in {state_dir}",
            f"run: depin-gateway init --config {config_path or 'CONFIG'}",
        )
    check_listen_free("status.listen", listen)


def check_dir_arg(argument: str, text: str | Path) -> Path:
    """A directory that exists or could be created (its nearest existing ancestor is a
    writable directory). Creates nothing: a later check may still fail."""
    path = _path(argument, str(text))
    if path.exists() and not path.is_dir():
        raise ConfigError(argument, f"{path} is a file", "give a directory")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(argument, f"{ancestor} is a file", "give a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(
            argument, f"{ancestor} is not writable", "choose a directory you can write"
        )
    return path
