"""A real ``depin-gateway run`` child process for the demo: start, status, kill -9, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError

__all__ = ["DemoGateway"]


class DemoGateway:
    def __init__(self, config: Path, status_port: int) -> None:
        self.config = config
        self.url = f"http://127.0.0.1:{status_port}/status"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = open(config.parent / "gateway.log", "ab")  # noqa: SIM115 (lives as long as the demo)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.status():
                return
            time.sleep(0.1)
        raise GatewayError(f"gateway did not start; see {self.config.parent / 'gateway.log'}")

    def status(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:  # noqa: S310 (loopback)
                data: dict[str, Any] = json.load(response)
                return data
        except OSError:
            return None

    def kill9(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()
