"""``depin-gateway export-car``: the local ledger's batch headers as one CAR v1 file.

One DAG-CBOR block per signed batch header, oldest first; the root is the chain head (the newest
header), and each header links its predecessor (``prev``), so standard IPLD tools can walk the
whole chain from the root.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import Config
from gateway.errors import GatewayError
from gateway.piece.car import Block, write_car
from gateway.piece.dagcbor import cid_for_dag_cbor
from gateway.seal import Vault

__all__ = ["export_car"]


def export_car(config: Config, out: Path) -> tuple[int, str]:
    """Write the CAR; returns (number of headers, root CID)."""
    vault = Vault(config.state_dir, read_only=True)
    blocks = [vault.header_block(seq) for seq in vault.seqs()]
    if not blocks:
        raise GatewayError("no sealed batches yet: nothing to export")
    cids = [cid_for_dag_cbor(block) for block in blocks]
    tmp = out.with_name(out.name + ".partial")
    with open(tmp, "wb") as stream:
        write_car(
            stream, [cids[-1]], [Block(cid, block) for cid, block in zip(cids, blocks, strict=True)]
        )
    tmp.replace(out)
    return len(blocks), str(cids[-1])
