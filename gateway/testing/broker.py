"""A private Mosquitto broker for the demo, tests and benchmarks (loopback only)."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from gateway.errors import GatewayError

__all__ = ["Broker", "free_port"]

_SETTINGS = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence {persistence}
persistence_location {directory}/
autosave_interval 1
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages {inflight}
log_dest file {directory}/mosquitto.log
user {user}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Broker:
    """``with Broker(dir) as b:`` starts mosquitto on a free port; ``restart()`` keeps its data.

    ``extra`` is mosquitto.conf text appended after the defaults: listener options there (cafile,
    certfile, keyfile, require_certificate) apply to the loopback listener, and a later
    ``allow_anonymous false`` overrides the default.
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        persistence: bool = True,
        inflight: int = 1000,
        extra: str = "",
    ) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise GatewayError("mosquitto is not installed (make test / make demo install it)")
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "mosquitto.conf").write_text(
            _SETTINGS.format(
                port=self.port,
                directory=directory,
                persistence=str(persistence).lower(),
                inflight=inflight,
                user=getpass.getuser(),
            )
            + extra  # e.g. TLS options for the listener above, allow_anonymous false, password_file
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise GatewayError(f"mosquitto exited; see {self.directory / 'mosquitto.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise GatewayError("mosquitto did not start listening within 10 s")

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
