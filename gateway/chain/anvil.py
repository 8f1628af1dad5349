"""Start and stop a local anvil (npm ``@foundry-rs/anvil``) on 127.0.0.1: tests and the devnet.

The npm package's ``bin`` is a Node.js wrapper that spawns the real binary from the platform
package (``@foundry-rs/anvil-linux-amd64`` etc., an optionalDependency). We start that binary
directly, so the PID we stop is anvil itself and no grandchild outlives us.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from gateway.chain.jsonrpc import RpcClient
from gateway.errors import ChainError

__all__ = ["ANVIL_ACCOUNTS", "Anvil", "find_anvil", "free_port"]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVNET_CHAIN_ID = 31415926
# anvil's default dev accounts (mnemonic "test test ... junk", each funded with 10000 ETH):
# printed by anvil at start; account 0 and 1.
ANVIL_ACCOUNTS = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
)
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_anvil(root: Path = REPO_ROOT) -> Path:
    modules = root / "node_modules" / "@foundry-rs"
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    native = modules / f"anvil-{platform.system().lower()}-{arch}" / "bin" / "anvil"
    if native.is_file() and os.access(native, os.X_OK):
        return native
    raise ChainError("", f"anvil not found at {native}; run `make node_modules/.installed`")


class Anvil:
    """``with Anvil(log_dir) as node:`` a fresh chain at ``node.url``; stopped by PID on exit."""

    def __init__(
        self,
        log_dir: Path,
        *,
        chain_id: int = DEVNET_CHAIN_ID,
        port: int | None = None,
        binary: Path | None = None,
        extra_args: tuple[str, ...] = (),
        start_timeout: float = 30.0,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"anvil-{self.port}.log"
        self._binary = binary or find_anvil()
        self._extra = extra_args
        self._start_timeout = start_timeout
        self._preexec_fn = preexec_fn  # e.g. die with the parent (gateway.testing.devnet)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(self._binary), "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--chain-id", str(self.chain_id), *self._extra]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._preexec_fn,  # noqa: PLW1509 - callers spawn from one thread
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        probe = RpcClient(self.url, timeout=1.0, attempts=1)
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            try:
                if probe.chain_id() == self.chain_id:
                    return
            except ChainError:
                time.sleep(0.05)
        tail = self.log_path.read_bytes()[-500:].decode(errors="replace")
        self.stop()
        raise ChainError(self.url, f"anvil did not start: {tail.strip() or 'no output'}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> Anvil:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
