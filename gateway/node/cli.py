"""``depin-gateway node init`` and ``node run``: one line on stderr and an exit code on errors."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from gateway.errors import ConfigError, GatewayError
from gateway.keys import create_identity, format_gateway_public, load_identity
from gateway.node.config import load_node_config, render_node_config
from gateway.node.runner import serve
from gateway.node.service import provider_id_for

__all__ = ["node_init_main", "node_run_main"]

EXIT_USAGE = 2


def _fail(exc: GatewayError) -> int:
    print(f"depin-gateway node: {exc}", file=sys.stderr)
    return EXIT_USAGE if isinstance(exc, ConfigError) else 1


def node_init_main(config_path: str | Path, data_dir: str | Path, listen: str | None = None) -> int:
    """Write a commented ``[node]`` config and create the provider key (never overwritten)."""
    path = Path(config_path)
    try:
        if path.exists():
            raise ConfigError(
                "",
                f"{path} already exists; refusing to overwrite it",
                "choose another --config path or edit the file",
            )
        directory = Path(data_dir).resolve()
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_node_config(directory, listen), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                "",
                f"cannot write {path} or {directory}: {exc.strerror}",
                "check the paths and permissions",
            ) from None
        config = load_node_config(path)
        if config.identity.exists():
            key = load_identity(config.identity)
            print(f"using the existing provider key {config.identity}")
        else:
            key = create_identity(config.identity)
            print(f"created provider key {config.identity} (mode 0600; back it up)")
    except GatewayError as exc:
        return _fail(exc)
    provider = format_gateway_public(key.verify_key)
    print(f"wrote {path}")
    print(f"provider {provider} (id {config.provider_id or provider_id_for(provider)})")
    print(f"start it with: depin-gateway node run --config {path}")
    return 0


def node_run_main(config_path: str | Path) -> int:
    """Serve until SIGTERM/SIGINT (systemd Type=notify: READY=1 once listening)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_node_config(config_path)
        if not config.identity.exists():
            raise ConfigError(
                "node.identity",
                f"{config.identity} does not exist",
                f"create it with: depin-gateway node init --config {config_path}",
            )
        asyncio.run(serve(config))
    except GatewayError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        return 130
    return 0
