"""The real FOC client reads our stand-ins: synapse-core (npm, viem) lists the registered PDP
provider with its offering decoded, sees it approved by FWSS, and reads a data set and its
PDP state from our contracts, exactly as it reads FilOzone's on calibration."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.testing.focnet import USDFC, FocChain
from tests.devnet_support import PAY, chain_fixture, data_set_with, snapshot_fixture, view

SCRIPT = Path(__file__).parent / "js" / "synapse_reads.mjs"
FUND = Path(__file__).parent / "js" / "synapse_fund.mjs"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FocChain]:
    yield from chain_fixture(tmp_path_factory)


@pytest.fixture(autouse=True)
def fresh(chain: FocChain) -> Iterator[None]:
    yield from snapshot_fixture(chain)


def test_synapse_core_reads_providers_approvals_and_data_sets(chain: FocChain) -> None:
    provider, client, set_id = data_set_with(chain, [secrets.token_bytes(1000)])
    contracts = json.dumps(chain.deployment.addresses())
    done = subprocess.run(
        ["node", str(SCRIPT), chain.rpc.url, contracts, str(set_id)],
        capture_output=True,
        timeout=120,
        check=False,
        cwd=ROOT,  # node resolves node_modules from here
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = json.loads(done.stdout)
    [listed] = out["providers"]
    assert listed["serviceProvider"].lower() == provider.address.lower()
    offering = listed["pdp"]
    assert offering["serviceURL"] == "http://127.0.0.1:9/"
    assert int(offering["minPieceSizeInBytes"]) == 127
    assert int(offering["maxPieceSizeInBytes"]) == 1_065_353_216
    assert offering["paymentTokenAddress"].lower() == chain.deployment.usdfc.lower()
    assert [int(i) for i in out["approved"]] == [int(listed["id"])]
    data_set = out["dataSet"]
    assert data_set["payer"].lower() == client.address.lower()
    assert int(data_set["dataSetId"]) == set_id and int(data_set["clientDataSetId"]) == 7
    # no challenge scheduled yet, and a data set that does not exist: both null for the client
    # (the second only because our revert text is the one it matches, "Data set not live")
    assert out["live"] is True
    assert out["nextChallengeEpoch"] is None and out["notLiveChallengeEpoch"] is None


def test_synapse_core_funds_filecoin_pay_with_a_permit(chain: FocChain) -> None:
    """synapse-core's permit path end to end on our MockUSDFC (name, nonces, version read
    through our Multicall3) and FilecoinPay (deposit + FWSS as operator)."""
    secret = secrets.token_bytes(32)
    client = chain.new_wallet(usdfc=50 * USDFC, token_bytes=lambda _: secret)
    contracts = json.dumps(chain.deployment.addresses())
    argv = ["node", str(FUND), chain.rpc.url, contracts, "0x" + secret.hex(), str(20 * USDFC)]
    done = subprocess.run(argv, capture_output=True, timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = json.loads(done.stdout)
    assert (out["version"], out["nonce"], out["status"]) == ("1", "0", "success")
    assert int(out["balance"]) == 50 * USDFC
    pay, token, fwss = chain.deployment.filecoin_pay, chain.deployment.usdfc, chain.deployment.fwss
    assert view(chain, PAY, pay, "accounts", token, client.address)[0] == 20 * USDFC
    approval = view(chain, PAY, pay, "operatorApprovals", token, client.address, fwss)
    assert approval[0] is True and approval[5] == 86400
