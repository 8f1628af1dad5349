"""The JSON-RPC client and `depin-gateway wallet` against a real anvil and a hostile HTTP server."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.chain.anvil import ANVIL_ACCOUNTS, Anvil, free_port
from gateway.chain.balance import read_balances, require_funds
from gateway.chain.jsonrpc import RpcClient
from gateway.chain.networks import NETWORKS
from gateway.errors import RpcProtocolError, RpcUnreachable, UnfundedWallet, WrongChainId
from gateway.testing.broker import Broker
from tests.conftest import ROOT, write_config

pytestmark = pytest.mark.slow
DEVNET = NETWORKS["devnet"]


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    """One real anvil for the module (chain 31415926 on 127.0.0.1), stopped by PID at the end."""
    node = Anvil(tmp_path_factory.mktemp("anvil"))
    node.start()
    try:
        yield node
    finally:
        assert node.process is not None
        pid = node.process.pid
        node.stop()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # really gone, not left running


def _no_sleep(_: float) -> None:
    return None


def test_chain_id_of_the_real_node_is_checked(anvil: Anvil) -> None:
    client = RpcClient(anvil.url)
    assert client.chain_id() == 31415926
    client.check_chain_id(DEVNET.chain_id)
    with pytest.raises(WrongChainId) as caught:
        client.check_chain_id(NETWORKS["calibration"].chain_id)
    assert (caught.value.expected, caught.value.actual) == (314159, 31415926)


def test_balance_of_a_funded_and_an_empty_account(anvil: Anvil) -> None:
    client = RpcClient(anvil.url)
    funded = read_balances(client, DEVNET, ANVIL_ACCOUNTS[0], None)
    assert funded.fil == 10_000 * 10**18  # anvil's default dev account balance
    empty = read_balances(client, DEVNET, "0x000000000000000000000000000000000000dEaD", None)
    assert empty.fil == 0 and empty.usdfc is None
    require_funds(funded, "FIL", 10**18, "gas")
    with pytest.raises(UnfundedWallet, match="0x000000000000000000000000000000000000dEaD"):
        require_funds(empty, "FIL", 1, "create data set gas")


def test_rpc_error_of_the_real_node_is_typed(anvil: Anvil) -> None:
    from gateway.errors import RpcError

    with pytest.raises(RpcError) as caught:
        RpcClient(anvil.url).call("eth_noSuchMethod")
    assert caught.value.code == -32601


def test_closed_port_is_unreachable_after_bounded_retries() -> None:
    sleeps: list[float] = []
    client = RpcClient(f"http://127.0.0.1:{free_port()}", attempts=4, sleep=sleeps.append)
    started = time.monotonic()
    with pytest.raises(RpcUnreachable) as caught:
        client.chain_id()
    assert caught.value.attempts == 4 and "refused" in str(caught.value).lower()
    assert len(sleeps) == 3 and all(0 < s <= 3.0 for s in sleeps)
    assert time.monotonic() - started < 5


# ---- a hostile node: a raw TCP server that answers whatever bytes we tell it -------------------


class HostileNode(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer: bytes, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.requests_seen = 0
        super().__init__(("127.0.0.1", 0), _HostileHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _HostileHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, HostileNode)
        server.requests_seen += 1
        self.request.settimeout(30)  # a loaded CI machine reads a big answer slowly
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            data += chunk
        # Read the request body too: closing with unread bytes in the receive buffer sends a
        # RST, which can reach the client before it has read the answer (then it retries).
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
        while len(body) < length:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            body += chunk
        time.sleep(server.delay)
        try:
            self.request.sendall(server.answer)
        except OSError:
            pass  # the client gave up (size cap or timeout): that is the point


def _http(body: bytes, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + body


@pytest.fixture
def hostile() -> Iterator[list[HostileNode]]:
    servers: list[HostileNode] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def _serve(servers: list[HostileNode], answer: bytes, delay: float = 0.0) -> HostileNode:
    server = HostileNode(answer, delay)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    servers.append(server)
    return server


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (_http(b"<html>hello</html>"), "not JSON"),
        (_http(b"\x00\xff" * 100), "not JSON"),
        (_http(b"[" * 100_000 + b"]" * 100_000), "not JSON"),
        (
            _http(b'{"jsonrpc":"2.0","id":1,"result":"' + b"0" * (5 * 1024 * 1024) + b'"}'),
            "larger than",
        ),
        (
            _http(b'{"jsonrpc":"2.0","id":1,"result":' + b'{"a":' * 10 + b"1" + b"}" * 11),
            "not a hex",
        ),
        (_http(b'{"jsonrpc":"2.0","id":99,"result":"0x1"}'), "not ours"),
        (_http(b"", "404 Not Found"), "HTTP 404"),
    ],
    ids=["html", "binary", "deeply-nested", "huge", "nested-result", "wrong-id", "http-404"],
)
def test_garbage_answers_are_typed_protocol_errors(
    hostile: list[HostileNode], answer: bytes, match: str
) -> None:
    server = _serve(hostile, answer)
    with pytest.raises(RpcProtocolError, match=match):
        RpcClient(server.url, sleep=_no_sleep).chain_id()
    assert server.requests_seen == 1  # a wrong answer is final: never retried


@pytest.mark.parametrize(
    ("answer", "delay", "match"),
    [
        (_http(b"bad gateway", "502 Bad Gateway"), 0.0, "HTTP 502"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", 0.0, "BadStatusLine"),  # not HTTP at all
        (b"", 0.0, "closed connection"),  # closes without a word
        (_http(b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'), 1.5, "timed out"),
    ],
    ids=["http-502", "not-http", "empty", "too-slow"],
)
def test_5xx_and_broken_connections_are_retried_then_unreachable(
    hostile: list[HostileNode], answer: bytes, delay: float, match: str
) -> None:
    server = _serve(hostile, answer, delay)
    client = RpcClient(server.url, timeout=0.5, attempts=3, sleep=_no_sleep)
    with pytest.raises(RpcUnreachable, match=match) as caught:
        client.chain_id()
    assert caught.value.attempts == 3
    deadline = time.monotonic() + 5
    while server.requests_seen < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.requests_seen == 3


# ---- `depin-gateway wallet` end to end ---------------------------------------------------------


def wallet_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "wallet", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def _secret_hex(key: Path) -> str:
    return key.read_text().strip().split(":", 1)[1]


def _set_code_token(anvil: Anvil, amount: int) -> str:
    """A USDFC stand-in: code that answers every call with one uint256 word (``amount``).

    PUSH32 amount, PUSH1 0, MSTORE, PUSH1 32, PUSH1 0, RETURN.
    """
    token = "0x00000000000000000000000000000000000Dfc01"
    code = "0x7f" + amount.to_bytes(32, "big").hex() + "60005260206000f3"
    RpcClient(anvil.url).call("anvil_setCode", [token, code])
    return token


def test_wallet_init_address_balance_end_to_end(anvil: Anvil, tmp_path: Path) -> None:
    key = tmp_path / "state" / "wallet.key"
    key.parent.mkdir()
    init = wallet_cli("init", "--key", str(key))
    assert init.returncode == 0, init.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    address = init.stdout.strip().splitlines()[-1]

    shown = wallet_cli("address", "--key", str(key))
    assert (shown.returncode, shown.stdout.strip()) == (0, address)

    base = ["--key", str(key), "--network", "devnet", "--rpc", anvil.url]
    empty = wallet_cli("balance", *base)
    assert empty.returncode == 0, empty.stderr
    assert "FIL      0 FIL" in empty.stdout and "no FIL" in empty.stderr

    RpcClient(anvil.url).call("anvil_setBalance", [address, hex(15 * 10**17)])
    token = _set_code_token(anvil, 125 * 10**17)
    funded = wallet_cli("balance", *base, "--usdfc", token.lower())
    assert funded.returncode == 0, funded.stderr
    assert f"address  {address}" in funded.stdout
    assert "FIL      1.5 FIL" in funded.stdout
    assert "USDFC    12.5 USDFC" in funded.stdout

    again = wallet_cli("init", "--key", str(key))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    assert wallet_cli("address", "--key", str(key)).stdout.strip() == address

    secret = _secret_hex(key)
    for result in (init, shown, empty, funded, again):
        assert secret not in result.stdout + result.stderr
        assert secret.upper() not in result.stdout + result.stderr


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("depin-gateway: ") and text in lines[0], lines
    assert "Traceback" not in result.stderr


def test_wallet_errors_are_one_line_with_exit_codes(anvil: Anvil, tmp_path: Path) -> None:
    key = tmp_path / "wallet.key"
    _one_line_error(wallet_cli("address", "--key", str(key)), 1, "wallet init")
    assert wallet_cli("init", "--key", str(key)).returncode == 0
    rpc = ["--rpc", anvil.url]
    wrong = wallet_cli("balance", "--key", str(key), "--network", "calibration", *rpc)
    _one_line_error(wrong, 1, "wrong chain id 31415926, expected 314159")
    closed = f"http://127.0.0.1:{free_port()}"
    dead = wallet_cli("balance", "--key", str(key), "--network", "devnet", "--rpc", closed)
    _one_line_error(dead, 1, "unreachable after 3 attempt(s)")
    no_token = wallet_cli(
        "balance", "--key", str(key), "--network", "devnet", *rpc, "--usdfc", ANVIL_ACCOUNTS[1]
    )
    _one_line_error(no_token, 1, "no token contract")
    typo = "0x70997970C51812dc3A010C7d01b50e0d17dc79c8"  # last letter's case flipped
    _one_line_error(
        wallet_cli("balance", "--key", str(key), "--network", "devnet", *rpc, "--usdfc", typo),
        2,
        "checksum",
    )
    key.chmod(0o644)
    _one_line_error(wallet_cli("address", "--key", str(key)), 1, f"chmod 600 {key}")
    _one_line_error(wallet_cli("address", "--config", str(tmp_path / "none.toml")), 2, "--key")


def test_wallet_key_never_appears_in_gateway_status_or_log(
    broker: Broker, gateway_process: object, tmp_path: Path
) -> None:
    """A gateway whose state dir holds the wallet: its status JSON and log never carry the key."""
    config = write_config(tmp_path, broker.port)
    init = wallet_cli("init", "--config", str(config))
    assert init.returncode == 0, init.stderr
    key = tmp_path / "state" / "wallet.key"
    secret = _secret_hex(key)
    gateway = gateway_process(config)  # type: ignore[operator]
    gateway.start()
    status = json.dumps(gateway.status())
    assert gateway.stop() == 0
    log = gateway.log.read_text()
    assert secret not in status and secret not in log
    assert wallet_cli("address", "--config", str(config)).stdout.strip() in init.stdout


def test_anvil_launcher_refuses_a_missing_binary(tmp_path: Path) -> None:
    from gateway.chain.anvil import find_anvil
    from gateway.errors import ChainError

    with pytest.raises(ChainError, match=r"node_modules/\.installed"):
        find_anvil(tmp_path)


def test_free_port_has_no_listener() -> None:
    """free_port hands back a port nobody listens on (what the unreachable tests rely on)."""
    port = free_port()
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))
