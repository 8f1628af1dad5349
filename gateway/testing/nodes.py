"""Storage nodes for the demo: real ``python -m gateway.node run`` processes on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gateway.errors import GatewayError
from gateway.keys import create_identity
from gateway.testing.broker import free_port

__all__ = ["DemoNode", "DemoNodes"]


class DemoNode:
    """``python -m gateway.node run`` on a free loopback port, announcing on ``broker_port``."""

    def __init__(self, directory: Path, broker_port: int, **overrides: object) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = directory / "data"
        directory.mkdir(parents=True, exist_ok=True)
        settings = {
            "listen": f"127.0.0.1:{self.port}",
            "data_dir": str(self.data_dir),
            "capacity": "1GiB",
            "min_duration": "60s",
            "fleet_broker": f"mqtt://127.0.0.1:{broker_port}",
            "announce_interval": "2s",
            **overrides,
        }
        self.config = directory / "node.toml"
        self.config.write_text("[node]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                    for k, v in settings.items()))  # fmt: skip
        create_identity(self.data_dir / "node.key")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.directory / "node.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.node", "run", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise GatewayError(f"storage node did not start; see {self.directory / 'node.log'}")

    def kill9(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def destroy(self) -> None:
        """kill -9 and delete its disk: the node and everything it stored are gone."""
        self.kill9()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


class DemoNodes:
    def __init__(self, root: Path, broker_port: int, count: int) -> None:
        self.root = root
        self.broker_port = broker_port
        self.nodes = [DemoNode(root / f"node{i}", broker_port) for i in range(count)]

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def add(self) -> DemoNode:
        """A newcomer: found by the gateway through its signed ask on the fleet broker."""
        node = DemoNode(self.root / f"node{len(self.nodes)}", self.broker_port)
        node.start()
        self.nodes.append(node)
        return node

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
