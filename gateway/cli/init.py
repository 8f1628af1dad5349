"""``depin-gateway init``: a commented config and the keys, all valid or nothing written.

Everything is checked and the config text is validated before the first file is created; keys
created by a run that then fails are removed again, so a failed init can simply be repeated.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nacl.public import PrivateKey

from gateway.cli.checks import check_dir_arg, ensure_dir
from gateway.config import config_from_string, load_config
from gateway.config.checks import check_gateway_id, check_path
from gateway.errors import ConfigError, KeyMaterialError

__all__ = ["cmd_init"]


def _default_id() -> str:
    """The host name, made into a valid id (a host name may hold dots or other characters)."""
    name = os.uname().nodename.split(".")[0]
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in name)
    return cleaned[:64].strip("-") or "gateway"


def _owner_keys(args: argparse.Namespace, state_dir: Path) -> tuple[list[str], PrivateKey | None]:
    """The owner public keys for the config, and a new owner key to write (if one is needed)."""
    from gateway.keys import format_owner_public, load_owner_secret, parse_owner_public

    if args.owner_pub:
        try:
            parse_owner_public(args.owner_pub)
        except KeyMaterialError as exc:
            raise ConfigError("--owner-pub", exc.reason, "print one with: depin-gateway owner-key "
                              "--out owner.key") from None  # fmt: skip
        return [args.owner_pub.strip()], None
    existing = state_dir / "owner.key"
    if existing.exists():
        try:
            return [format_owner_public(load_owner_secret(existing).public_key)], None
        except KeyMaterialError as exc:
            fix = "restore owner.key from your backup, or move it away"
            raise ConfigError("--state-dir", f"{existing}: {exc.reason}", fix) from None
    owner = PrivateKey.generate()
    return [format_owner_public(owner.public_key)], owner


def cmd_init(args: argparse.Namespace) -> int:
    from gateway.config.template import render_config
    from gateway.keys import create_identity, create_owner_key
    from gateway.restore import atomic_output

    config_path = check_path("--config", args.config, Path.cwd())
    # `--state-dir ""` is a mistake to report, not a request for the default.
    default = "/var/lib/depin-gateway" if args.state_dir is None else args.state_dir
    state_dir = check_path("--state-dir", default, Path.cwd())
    if config_path.is_dir():
        raise ConfigError("--config", f"{config_path} is a directory", "give a file name")
    text, owner = None, None
    if config_path.exists():
        load_config(config_path)  # an existing config must be valid before keys are added
        print(f"config {config_path} exists; leaving it as it is", file=sys.stderr)
    else:
        gateway_id = check_gateway_id("--id", args.id or _default_id())
        owner_keys, owner = _owner_keys(args, state_dir)
        text = render_config(gateway_id, str(state_dir), owner_keys, args.mqtt_port)
        config_from_string(text, config_path)  # what we write must be valid: check it first
    check_dir_arg("--config", config_path.parent)  # both checked before either is created
    check_dir_arg("--state-dir", state_dir)
    ensure_dir("--config", config_path.parent, mode=0o755)
    ensure_dir("--state-dir", state_dir)
    created: list[Path] = []
    try:
        if text is not None and owner is not None:
            create_owner_key(state_dir / "owner.key", owner)
            created.append(state_dir / "owner.key")
            print(f"created owner key {created[-1]} (keep a copy: it decrypts your data)")
        identity = state_dir / "identity.key"
        if identity.exists():
            print(f"identity {identity} exists; never overwritten")
        else:
            key = create_identity(identity)
            created.append(identity)
            print(f"created identity {identity} ({key.verify_key.encode().hex()[:16]}...)")
        if text is not None:
            umask = os.umask(0)
            os.umask(umask)
            with atomic_output(config_path, mode=0o666 & ~umask) as out:
                out.write(text)
            print(f"wrote {config_path}")
    except BaseException:
        for path in created:  # keys nothing has used yet; a repeated init makes new ones
            path.unlink(missing_ok=True)
        raise
    return 0
