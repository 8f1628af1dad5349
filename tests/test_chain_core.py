"""Chain cores without a node: Keccak-256, EIP-55, presets, JSON-RPC parsing and retry policy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from eth_utils import is_checksum_address as reference_is_checksum
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.chain import erc20
from gateway.chain.address import is_checksum_address, parse_address, to_checksum_address
from gateway.chain.balance import Balances, format_amount, require_funds
from gateway.chain.jsonrpc import (
    HttpReply,
    RpcClient,
    TransportFailure,
    decode_reply,
    encode_request,
    parse_data,
    parse_quantity,
)
from gateway.chain.keccak import function_selector, keccak256
from gateway.chain.networks import NETWORKS, get_network
from gateway.errors import (
    ChainError,
    ConfigError,
    GatewayError,
    RpcError,
    RpcProtocolError,
    RpcUnreachable,
    UnfundedWallet,
    WrongChainId,
)

KECCAK_EMPTY = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_keccak256_is_not_fips_sha3() -> None:
    """Ethereum's Keccak-256 of b"" is c5d2...a470; hashlib.sha3_256 (FIPS 202) differs."""
    assert keccak256(b"").hex() == KECCAK_EMPTY
    assert hashlib.sha3_256(b"").hexdigest() != KECCAK_EMPTY
    assert hashlib.sha3_256(b"").hexdigest().startswith("a7ffc6f8")
    assert keccak256(b"abc").hex().startswith("4e03657a")  # Keccak team's known answer


def test_erc20_selectors_are_keccak_of_their_signatures() -> None:
    assert function_selector("balanceOf(address)") == erc20.BALANCE_OF
    assert function_selector("decimals()") == erc20.DECIMALS


def _all_addresses() -> list[tuple[str, str, str]]:
    rows = []
    for network in NETWORKS.values():
        for field in network.contracts.__slots__:  # type: ignore[attr-defined]
            address = getattr(network.contracts, field)
            if address is not None:
                rows.append((network.name, field, address))
    return rows


@pytest.mark.parametrize(("network", "field", "address"), _all_addresses())
def test_preset_addresses_are_valid_eip55(network: str, field: str, address: str) -> None:
    assert is_checksum_address(address), (network, field)
    assert reference_is_checksum(address), (network, field)  # eth-utils agrees


def test_presets_name_every_foc_contract_on_real_networks() -> None:
    for name in ("mainnet", "calibration"):
        contracts = NETWORKS[name].contracts
        assert all(getattr(contracts, f) for f in contracts.__slots__), name  # type: ignore[attr-defined]
    assert [n.chain_id for n in NETWORKS.values()] == [314, 314159, 31415926]
    assert NETWORKS["devnet"].rpc_url == "http://127.0.0.1:8545"


def test_unknown_network_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="mainnet, calibration, devnet"):
        get_network("ropsten")


@settings(max_examples=50)
@given(st.binary(min_size=20, max_size=20))
def test_our_eip55_matches_eth_utils(raw: bytes) -> None:
    address = to_checksum_address(raw)
    assert reference_is_checksum(address)
    assert parse_address(address.lower()) == address
    assert parse_address("0x" + address[2:].upper()) == address


def test_mixed_case_address_with_a_typo_is_refused() -> None:
    good = "0x02925630df557F957f70E112bA06e50965417CA0"
    with pytest.raises(ConfigError, match="checksum"):
        parse_address(good[:-1] + "a")  # flip the case of one letter: "0" -> "a" changes digit
    with pytest.raises(ConfigError, match="checksum"):
        parse_address(good.replace("F957", "f957"))
    with pytest.raises(ConfigError, match="not an address"):
        parse_address("0x1234")


def test_chain_errors_are_gateway_errors_with_data() -> None:
    error = WrongChainId("http://x", 314159, 1)
    assert isinstance(error, ChainError) and isinstance(error, GatewayError)
    assert (error.expected, error.actual) == (314159, 1)
    assert "wrong chain id 1, expected 314159" in str(error)
    assert "\n" not in str(UnfundedWallet("http://x", "0xab", "FIL", 1, 2, "create data set"))


# ---- sans-I/O JSON-RPC core --------------------------------------------------------------------


def test_request_body_is_compact_json_rpc() -> None:
    body = encode_request(7, "eth_getBalance", ["0xab", "latest"])
    assert json.loads(body) == {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "eth_getBalance",
        "params": ["0xab", "latest"],
    }


def _reply(**fields: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, **fields}).encode()


def test_result_and_error_replies_are_typed() -> None:
    assert decode_reply(_reply(result="0x1"), 1, rpc="r", method="m") == "0x1"
    with pytest.raises(RpcError) as caught:
        decode_reply(
            _reply(error={"code": -32000, "message": "execution reverted"}),
            1,
            rpc="r",
            method="eth_call",
        )
    assert (caught.value.code, caught.value.message) == (-32000, "execution reverted")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>502 Bad Gateway</html>",
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting: RecursionError inside json
        b'{"jsonrpc":"2.0","id":1,"result":' + b"9" * 5000 + b"}",  # int-from-string limit
        json.dumps([{"jsonrpc": "2.0", "id": 1, "result": "0x1"}]).encode(),  # batch reply
        json.dumps({"jsonrpc": "1.0", "id": 1, "result": "0x1"}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": 2, "result": "0x1"}).encode(),  # not our id
        json.dumps({"jsonrpc": "2.0", "id": True, "result": "0x1"}).encode(),  # True == 1
        json.dumps({"jsonrpc": "2.0", "id": 1}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": 1, "result": 1, "error": {}}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": "x", "message": 1}}).encode(),
    ],
)
def test_malformed_replies_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(RpcProtocolError):
        decode_reply(body, 1, rpc="r", method="m")


def test_oversized_reply_is_refused_before_parsing() -> None:
    with pytest.raises(RpcProtocolError, match="larger than 100 bytes"):
        decode_reply(_reply(result="0x" + "0" * 200), 1, rpc="r", method="m", max_bytes=100)


def test_error_message_from_node_is_one_bounded_line() -> None:
    with pytest.raises(RpcError) as caught:
        decode_reply(_reply(error={"code": 3, "message": "a\nb" * 500}), 1, rpc="r", method="m")
    assert "\n" not in str(caught.value) and len(caught.value.message) <= 203


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0x0", 0), ("0x1bc16d674ec80000", 2 * 10**18), ("0x" + "f" * 64, 2**256 - 1)],
)
def test_quantities_parse(value: str, expected: int) -> None:
    assert parse_quantity(value, rpc="r", what="w") == expected


@pytest.mark.parametrize(
    "value", ["0x", "1", 1, None, "0x" + "f" * 65, "0x1_0", "0x 1", "0x+1", "0xg"]
)
def test_bad_quantities_are_refused(value: object) -> None:
    with pytest.raises(RpcProtocolError):
        parse_quantity(value, rpc="r", what="w")


def test_data_parses_strictly() -> None:
    assert parse_data("0x", rpc="r", what="w") == b""
    assert parse_data("0x00ff", rpc="r", what="w") == b"\x00\xff"
    for bad in ("0x0", "00", "0x00 ff", 5, "0x" + "00" * 11):
        with pytest.raises(RpcProtocolError):
            parse_data(bad, rpc="r", what="w", max_bytes=10)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_decoder(body: bytes) -> None:
    try:
        decode_reply(body, 1, rpc="r", method="m")
    except (RpcError, RpcProtocolError):
        pass


# ---- retry policy (a scripted transport; the real-socket cases are in test_chain_rpc.py) --------


class ScriptedTransport:
    """Plays back outcomes in order; records what was sent (a fake, like httpx MockTransport)."""

    def __init__(self, outcomes: list[HttpReply | TransportFailure]) -> None:
        self.outcomes = outcomes
        self.bodies: list[bytes] = []

    def post(self, url: str, body: bytes, timeout: float, max_bytes: int) -> HttpReply:
        self.bodies.append(body)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, TransportFailure):
            raise outcome
        return outcome


def _client(transport: ScriptedTransport, sleeps: list[float], attempts: int = 3) -> RpcClient:
    return RpcClient(
        "http://node",
        transport=transport,
        attempts=attempts,
        backoff=1.0,
        sleep=sleeps.append,
        rng=lambda: 0.5,
    )


def test_connection_errors_and_5xx_are_retried_with_backoff() -> None:
    ok = HttpReply(200, _reply(result="0x7a69"))
    transport = ScriptedTransport([TransportFailure("refused"), HttpReply(503, b""), ok])
    sleeps: list[float] = []
    assert _client(transport, sleeps).chain_id() == 0x7A69
    assert sleeps == [1.0, 2.0]  # backoff * 2^n * (0.5 + rng)
    assert len({json.loads(b)["id"] for b in transport.bodies}) == 1  # same request resent


def test_retries_are_bounded_then_unreachable() -> None:
    transport = ScriptedTransport([TransportFailure("refused")] * 3)
    sleeps: list[float] = []
    with pytest.raises(RpcUnreachable) as caught:
        _client(transport, sleeps).chain_id()
    assert caught.value.attempts == 3 and "refused" in str(caught.value)
    assert len(sleeps) == 2 and not transport.outcomes


@pytest.mark.parametrize(
    "outcome",
    [
        HttpReply(404, b"not found"),
        HttpReply(200, b"not json"),
        HttpReply(200, _reply(error={"code": -32601, "message": "method not found"})),
    ],
)
def test_final_answers_are_not_retried(outcome: HttpReply) -> None:
    transport = ScriptedTransport([outcome, HttpReply(200, _reply(result="0x1"))])
    sleeps: list[float] = []
    with pytest.raises((RpcError, RpcProtocolError)):
        _client(transport, sleeps).chain_id()
    assert sleeps == [] and len(transport.outcomes) == 1


def test_wrong_chain_id_names_both_ids() -> None:
    transport = ScriptedTransport([HttpReply(200, _reply(result="0x1"))])
    with pytest.raises(WrongChainId, match="wrong chain id 1, expected 314159"):
        _client(transport, []).check_chain_id(314159)


# ---- balances ----------------------------------------------------------------------------------


def test_amounts_format_exactly() -> None:
    assert format_amount(0) == "0"
    assert format_amount(1) == "0.000000000000000001"
    assert format_amount(15 * 10**17) == "1.5"
    assert format_amount(10**40) == "10000000000000000000000"


def test_require_funds_raises_unfunded_wallet_with_amounts() -> None:
    balances = Balances("devnet", 31415926, "http://n", "0xab", 5, 0, "0xcd")
    require_funds(balances, "FIL", 5, "gas")
    with pytest.raises(UnfundedWallet) as caught:
        require_funds(balances, "USDFC", 10**18, "foc fund")
    assert (caught.value.have, caught.value.need, caught.value.asset) == (0, 10**18, "USDFC")
    assert "foc fund" in str(caught.value)


def test_balance_of_calldata_is_selector_and_padded_address() -> None:
    data = erc20.balance_of_calldata("0x70997970c51812dc3a010c7d01b50e0d17dc79c8")
    assert data.hex() == "70a08231" + "00" * 12 + "70997970c51812dc3a010c7d01b50e0d17dc79c8"
    assert erc20.decode_uint256(b"") is None
    assert erc20.decode_uint256((7).to_bytes(32, "big")) == 7


def test_gateway_without_chain_loads_no_chain_dependency() -> None:
    """DESIGN 11: a gateway with no [chain] works as before, with no chain dependency loaded;
    building the CLI parser (which lists `wallet`) must not load them either."""
    import subprocess
    import sys

    code = (
        "import sys, gateway.daemon, gateway.cli.app\n"
        "gateway.cli.app._parser()\n"
        "heavy = ('eth_account', 'eth_abi', 'eth_keys', 'eth_utils', 'eth_hash', 'Crypto')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    root = Path(__file__).resolve().parents[1]  # this checkout, not whatever is installed
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60, cwd=root)  # fmt: skip
    assert result.stdout.strip() == "[]", result.stdout


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300)
@given(_json_values, st.integers(min_value=1, max_value=6))
def test_nesting_check_is_exact_on_valid_json(value: object, limit: int) -> None:
    """Brackets inside strings (and escaped quotes) do not count; real nesting does, exactly."""
    from gateway.chain.jsonrpc import nesting_within

    assert nesting_within(json.dumps(value).encode(), limit) == (_depth(value) <= limit)


def test_deep_nesting_cannot_crash_a_process_that_loaded_eth_account() -> None:
    """py_ecc (under eth-account) raises the recursion limit to 100000; json.loads of a deeply
    nested reply then overflows the C stack (SIGSEGV) unless depth is checked first."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.setrecursionlimit(100000)  # what importing py_ecc does\n"
        "from gateway.chain.jsonrpc import decode_reply\n"
        "from gateway.errors import RpcProtocolError\n"
        "try:\n"
        "    decode_reply(b'[' * 1_000_000 + b']' * 1_000_000, 1, rpc='r', method='m')\n"
        "except RpcProtocolError as exc:\n"
        "    print('refused:', exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-500:]
    assert "nested at most 32 deep" in result.stdout


def test_loading_eth_account_through_us_keeps_the_recursion_limit() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "before = sys.getrecursionlimit()\n"
        "from gateway.keys.wallet import wallet_from_secret\n"
        "from gateway.foc.eip712 import Domain, TerminateService, sign\n"
        "w = wallet_from_secret(bytes.fromhex('11' * 32))\n"
        "d = Domain(314159, '0x02925630df557F957f70E112bA06e50965417CA0')\n"
        "assert len(sign(d, TerminateService(1), w)) == 65\n"
        "print(before, sys.getrecursionlimit(), 'py_ecc' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    before, after, loaded = result.stdout.split()
    assert before == after and loaded == "True"
