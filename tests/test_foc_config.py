"""``[chain]`` and ``[foc]``: defaults, normalisation, errors that name the key, cross-section
rules; and a gateway without them never imports the chain stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import config_from_string
from gateway.errors import ConfigError

FOC = """
[storage]
backends = ["market", "foc"]
[chain]
network = "calibration"
[foc]
providers = ["3", "https://sp.example.net"]
max_price_per_tib_month = "2.5"
budget = 7
"""


def test_no_chain_sections_keep_the_market_only_gateway() -> None:
    config = config_from_string("")
    assert (config.chain, config.foc, config.storage.backends) == (None, None, ("market",))


def test_chain_and_foc_defaults_and_amounts_in_base_units() -> None:
    config = config_from_string(FOC)
    assert config.chain is not None and config.foc is not None
    assert config.chain.wallet == config.state_dir / "wallet.key"
    assert config.chain.confirmations == 5 and config.chain.max_fee == 10 * 10**9
    assert config.foc.max_price_per_tib_month == 25 * 10**17
    assert config.foc.budget == 7 * 10**18
    assert config.foc.keep_window == 7200.0 and config.foc.copies == 2
    assert [p.provider_id for p in config.foc.providers] == [3, None]
    assert config.foc.providers[1].url == "https://sp.example.net"


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        ("[chain]\nnetwork = 'moon'", "chain.network", "calibration"),
        ("[chain]\nconfirmations = 1000", "chain.confirmations", "0..900"),
        ("[chain]\nmax_fee = 0", "chain.max_fee", "use 1.."),
        ("[chain]\nfwss = '0x12'", "chain.fwss", "not an address"),
        ("[chain]\nrpc_url = 'ftp://x'", "chain.rpc_url", "http"),
        ("[chain]\nchain_id = 0", "chain.chain_id", "chain id"),
        ("[chain]\nnetwork = 'devnet'", "chain.fwss", "depin-gateway devnet"),
        ("[storage]\nbackends = ['ipfs']", "storage.backends[0]", "'foc'"),
        ("[storage]\nbackends = ['foc']", "storage.backends", "[foc]"),
        ("[foc]\ncopies = 1", "foc", "storage.backends"),
        ("[storage]\nbackends = ['foc']\n[foc]\n", "foc", "[chain]"),
        (FOC + "copies = 3\n", "foc.copies", "pin more"),
        (FOC.replace('"2.5"', '"-1"'), "foc.max_price_per_tib_month", "non-negative"),
        (FOC.replace('"2.5"', '"lots"'), "foc.max_price_per_tib_month", "not a number"),
        (FOC.replace('"3"', '"0"'), "foc.providers[0]", "ids start at 1"),
        (FOC + "keep_window = '1m'\n", "foc.keep_window", "out of range"),
        (FOC + "budgte = 1\n", "foc.budgte", "did you mean 'budget'"),
        (FOC + "upload_flow = 'ftp'\n", "foc.upload_flow", "streaming"),
    ],
)  # fmt: skip
def test_chain_and_foc_errors_name_the_key_and_the_fix(text: str, key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_string(text)
    assert info.value.key == key
    assert hint in str(info.value)


def test_a_gateway_without_chain_sections_loads_no_chain_code(tmp_path: Path) -> None:
    """Config, daemon wiring and the storage service are imported, a Gateway is built: no
    gateway.chain, gateway.foc, eth_account or eth_abi module is loaded."""
    code = f"""
import sys
from pathlib import Path
from gateway.config import config_from_string
from gateway.daemon.wiring import Gateway
from gateway.keys import create_identity, create_owner_key, format_owner_public
state = Path({str(tmp_path)!r})
create_identity(state / "identity.key")
owner = format_owner_public(create_owner_key(state / "owner.key").public_key)
text = f"[gateway]\\nstate_dir = {{str(state)!r}}\\n[owner]\\npublic_keys = [{{owner!r}}]\\n"
text += "[storage]\\nnodes = ['http://127.0.0.1:9']\\n"
gateway = Gateway(config_from_string(text, state / "g.toml"))
assert gateway.storage is not None
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("eth_account", "eth_abi", "eth_keys")
             or m.startswith(("gateway.chain", "gateway.foc")))
print(",".join(bad))
"""
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_devnet_config_snippet_is_a_valid_foc_config(tmp_path: Path) -> None:
    """What `depin-gateway devnet` prints loads as is: [chain] with every address, [foc]."""
    from types import SimpleNamespace

    from gateway.testing.devnet import config_snippet

    addr = "0x" + "12" * 20
    deployment = SimpleNamespace(
        fwss=addr, pdp_verifier=addr, filecoin_pay=addr, service_provider_registry=addr, usdfc=addr
    )
    chain = SimpleNamespace(deployment=deployment, chain_id=31415926)
    text = config_snippet(
        chain,
        "http://127.0.0.1:8545",
        ["http://127.0.0.1:9001"],  # type: ignore[arg-type]
        ["http://127.0.0.1:9101", "http://127.0.0.1:9102"],
    )
    config = config_from_string(text)
    assert config.chain is not None and config.chain.chain_id == 31415926
    assert config.foc is not None and config.storage.backends == ("market", "foc")
    assert [p.url for p in config.foc.providers] == [
        "http://127.0.0.1:9101",
        "http://127.0.0.1:9102",
    ]
