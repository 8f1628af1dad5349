"""Compile the devnet stand-in contracts (``gateway/chain/contracts/*.sol``) into committed JSON
artifacts (``gateway/chain/artifacts/<Contract>.json``: ABI, creation and runtime bytecode).

Run ``python -m gateway.chain.build`` after editing a contract. The compiler is npm ``solc``
(solcjs, WebAssembly: offline) at the version package-lock.json pins, driven with standard JSON
and pinned settings, so the bytes are reproducible: ``tests/test_devnet_contracts.py`` recompiles
and compares. At run time nothing here is needed: ``gateway.chain.artifacts`` loads the JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.errors import ChainError

__all__ = ["ARTIFACTS", "CONTRACTS", "SETTINGS", "SOLC_VERSION", "compile_contracts", "main"]

HERE = Path(__file__).resolve().parent
CONTRACTS = HERE / "contracts"
ARTIFACTS = HERE / "artifacts"
REPO_ROOT = HERE.parents[1]
SOLC_VERSION = "0.8.37"  # package.json / package-lock.json
# Pinned: the optimizer, and the EVM version (shanghai: anvil 1.7.1 runs later forks too, and
# FEVM supports shanghai opcodes, e.g. PUSH0). No metadata hash: it would only add bytes that
# change with file paths, never with behaviour.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "shanghai",
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}
_TIMEOUT = 600  # solcjs is WebAssembly on a shared 2-core machine: slow, but bounded


# solc's own CLI prefixes its JSON with a notice line; the library call answers JSON only.
_COMPILE_JS = (
    "const solc = require(process.argv[1]);"
    "process.stdout.write(solc.compile(require('fs').readFileSync(0, 'utf8')));"
)


def _solc_package(root: Path) -> Path:
    path = root / "node_modules" / "solc"
    if not (path / "index.js").is_file():
        raise ChainError("", f"solc not found at {path}; run `make node_modules/.installed`")
    return path


def compile_contracts(root: Path = REPO_ROOT) -> dict[str, dict[str, Any]]:
    """``{contract name: artifact}`` for every contract defined in ``contracts/*.sol``."""
    sources = {
        f"contracts/{p.name}": {"content": p.read_text()} for p in sorted(CONTRACTS.glob("*.sol"))
    }
    request = json.dumps({"language": "Solidity", "sources": sources, "settings": SETTINGS})
    node = subprocess.run(
        ["node", "-e", _COMPILE_JS, str(_solc_package(root))],
        input=request.encode(),
        capture_output=True,
        timeout=_TIMEOUT,
        check=False,
    )
    if node.returncode != 0:
        raise ChainError("", f"solc failed: {node.stderr.decode(errors='replace')[-500:]}")
    output = json.loads(node.stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ChainError("", "solc: " + "; ".join(e["formattedMessage"] for e in errors)[:2000])
    artifacts: dict[str, dict[str, Any]] = {}
    for source, contracts in sorted(output["contracts"].items()):
        for name, compiled in sorted(contracts.items()):
            if not compiled["evm"]["bytecode"]["object"]:
                continue  # an interface or abstract contract
            artifacts[name] = {
                "contractName": name,
                "source": source,
                "compiler": f"solc {SOLC_VERSION}",
                "settings": {k: v for k, v in SETTINGS.items() if k != "outputSelection"},
                "abi": compiled["abi"],
                "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
            }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    del argv
    artifacts = compile_contracts()
    ARTIFACTS.mkdir(exist_ok=True)
    for stale in ARTIFACTS.glob("*.json"):
        if stale.stem not in artifacts:
            stale.unlink()
    for name, artifact in artifacts.items():
        (ARTIFACTS / f"{name}.json").write_text(render(artifact))
        size = (len(artifact["deployedBytecode"]) - 2) // 2
        print(f"{name}: {size} bytes runtime")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
