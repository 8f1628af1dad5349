"""Our stand-ins answer the selectors the real FOC client calls: every function and event our
contracts share by name with the ABIs synapse-core ships (npm @filoz/synapse-core, generated from
FilOzone's contracts) has the same input types (so the same selector) and the same output types."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.chain.abi import abi_of, canonical_type

ROOT = Path(__file__).resolve().parents[1]
GENERATED = (
    ROOT / "node_modules" / "@filoz" / "synapse-core" / "dist" / "src" / "abis" / "generated.js"
)
PAIRS = {
    "FilecoinPay": ["filecoinPayV1Abi"],
    "FilecoinWarmStorageService": [
        "filecoinWarmStorageServiceAbi",
        "filecoinWarmStorageServiceStateViewAbi",
    ],
    "PDPVerifier": ["pdpVerifierAbi"],
    "ServiceProviderRegistry": ["serviceProviderRegistryAbi"],
}
# What the client and the node call (FOC.md 1.2, 2; synapse-core sp-registry/, warm-storage/, pay/).
REQUIRED = {
    "FilecoinPay": {"deposit", "depositWithPermitAndApproveOperator", "setOperatorApproval",
                    "accounts", "operatorApprovals", "getRail", "settleRail", "createRail"},
    "FilecoinWarmStorageService": {"dataSetCreated", "piecesAdded", "piecesScheduledRemove",
                                   "possessionProven", "nextProvingPeriod", "addApprovedProvider",
                                   "getApprovedProviders", "isProviderApproved", "getDataSet",
                                   "getClientDataSets", "viewContractAddress", "getPDPConfig"},
    "PDPVerifier": {"createDataSet", "addPieces", "schedulePieceDeletions", "nextProvingPeriod",
                    "provePossession", "getNextChallengeEpoch", "getDataSetLastProvenEpoch",
                    "getChallengeRange", "getRandomness", "findPieceIds", "getDataSetLeafCount",
                    "getNextPieceId", "getPieceCid", "dataSetLive", "getDataSetStorageProvider"},
    "ServiceProviderRegistry": {"registerProvider", "getProvider", "getProviderWithProduct",
                                "getProvidersByProductType", "getAllActiveProviders",
                                "getProviderIdByAddress", "isRegisteredProvider",
                                "REGISTRATION_FEE", "getProviderCount"},
}  # fmt: skip
_DUMP = """
const g = await import(process.argv[1]);
const out = {};
for (const name of process.argv.slice(2)) out[name] = g[name];
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def real_abis() -> dict[str, list[dict[str, Any]]]:
    names = sorted({n for ns in PAIRS.values() for n in ns})
    done = subprocess.run(
        ["node", "--input-type=module", "-e", _DUMP, str(GENERATED), *names],
        capture_output=True,
        timeout=60,
        check=True,
    )
    loaded: dict[str, list[dict[str, Any]]] = json.loads(done.stdout)
    return loaded


def _shapes(entries: list[dict[str, Any]], kind: str) -> dict[str, list[tuple[str, str]]]:
    shapes: dict[str, list[tuple[str, str]]] = {}
    for entry in entries:
        if entry.get("type") == kind:
            ins = ",".join(canonical_type(p) for p in entry["inputs"])
            outs = ",".join(canonical_type(p) for p in entry.get("outputs", []))
            if kind == "event":
                outs = ",".join(str(bool(p.get("indexed"))) for p in entry["inputs"])
            shapes.setdefault(entry["name"], []).append((ins, outs))
    return shapes


@pytest.mark.parametrize("contract", sorted(PAIRS))
def test_shared_functions_and_events_have_the_real_selectors_and_outputs(
    contract: str, real_abis: dict[str, list[dict[str, Any]]]
) -> None:
    ours = list(abi_of(contract).entries)
    real = [e for name in PAIRS[contract] for e in real_abis[name]]
    mismatches = []
    for kind in ("function", "event"):
        real_shapes = _shapes(real, kind)
        for name, [shape] in _shapes(ours, kind).items():
            if name in real_shapes and shape not in real_shapes[name]:
                mismatches.append((kind, name, shape, real_shapes[name]))
    assert mismatches == []
    ours_functions = set(_shapes(ours, "function"))
    assert REQUIRED[contract] <= ours_functions, REQUIRED[contract] - ours_functions
    assert REQUIRED[contract] <= set(_shapes(real, "function"))
