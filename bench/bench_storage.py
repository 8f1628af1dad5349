"""Storage network: upload throughput to a local node, the node's upload verification next to
commP, and the cost of a proof round per fragment.

    .venv/bin/python bench/bench_storage.py [--fragments 24] [--mib 1]

A real storage node (``python -m gateway.node run``) on 127.0.0.1 receives signed deals and
uploads from the gateway's own ``NodeClient``; it recomputes commP over every upload before it
accepts it, so its upload rate is bounded by its commP rate (printed alongside). Then every
fragment is challenged at 5 random leaves (as PDP does) and each Merkle path is verified against
the root in the piece CID; client and node CPU per fragment are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

from benchutil import cpu_seconds, machine_line
from nacl.signing import SigningKey

from gateway.deals.client import NodeClient
from gateway.deals.proving import check_prove_response, pick_leaves
from gateway.market import DealAcceptance, epoch_at
from gateway.piece import commp
from gateway.testing.node_client import make_proposal
from gateway.testing.nodes import DemoNode

CHALLENGES = 5


async def run(fragments: list[bytes], node: DemoNode) -> None:
    key = SigningKey.generate()
    client = NodeClient(key, timeout=120.0)
    assert node.process is not None
    pid = node.process.pid
    try:
        ask = (await client.ask(node.url))["body"]
        epoch = epoch_at(time.time())
        pieces: list[str] = []
        uploads: list[tuple[str, bytes]] = []
        for data in fragments:
            proposal = make_proposal(key, ask["provider"], data, epoch,
                                     storage_price_per_epoch=10**6)  # fmt: skip
            reply = await client.propose(node.url, proposal)
            acceptance, _ = DealAcceptance.open(reply.json())
            if not acceptance.accepted:
                raise SystemExit(f"deal refused: {acceptance.reason}")
            pieces.append(acceptance.piece_cid)
            uploads.append((acceptance.upload_url, data))
        node_cpu, started = cpu_seconds(pid), time.perf_counter()
        for upload_url, data in uploads:
            reply = await client.upload(node.url, upload_url, data)
            if reply.status != 204:
                raise SystemExit(f"upload failed: HTTP {reply.status}")
        elapsed = time.perf_counter() - started
        node_upload_cpu = cpu_seconds(pid) - node_cpu
        total = sum(len(d) for d in fragments)
        started = time.perf_counter()
        for data in fragments:
            commp(data)
        commp_rate = total / (time.perf_counter() - started) / 1e6
        print(
            f"upload: {len(fragments)} fragments, {total / 1e6:.1f} MB in {elapsed:.2f} s = "
            f"{total / elapsed / 1e6:.1f} MB/s (signed PUT, node recomputes commP)"
        )
        print(
            f"node CPU while receiving: {node_upload_cpu * 1000:.0f} ms = "
            f"{total / max(node_upload_cpu, 1e-9) / 1e6:.1f} MB per CPU-second; "
            f"commP alone (native) {commp_rate:.1f} MB/s on this machine"
        )

        rng = random.Random(7)
        client_cpu, node_cpu, started = time.process_time(), cpu_seconds(pid), time.perf_counter()
        for piece, data in zip(pieces, fragments, strict=True):
            leaves = pick_leaves(commp(data).padded_size // 32, CHALLENGES, rng)
            reply = await client.prove(node.url, piece, leaves)
            result = check_prove_response(piece, leaves, reply.json())
            if not result.ok:
                raise SystemExit(f"proof failed: {result.reason}")
        wall = time.perf_counter() - started
        client_ms = (time.process_time() - client_cpu) * 1000 / len(pieces)
        node_ms = (cpu_seconds(pid) - node_cpu) * 1000 / len(pieces)
        print(
            f"proof round: {CHALLENGES} leaves per fragment, {len(pieces)} fragments in "
            f"{wall:.2f} s; CPU per fragment proven: gateway {client_ms:.2f} ms "
            f"(request + verify), node {node_ms:.2f} ms (paths from its cached tree)"
        )
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fragments", type=int, default=24)
    parser.add_argument("--mib", type=float, default=1.0, help="fragment size in MiB")
    args = parser.parse_args()
    print(f"machine: {machine_line()}")
    size = int(args.mib * 1024 * 1024) - 1024  # payloads are not padded sizes
    fragments = [os.urandom(size) for _ in range(args.fragments)]
    root = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    node = DemoNode(root / "node", broker_port=1, capacity="8GiB", fleet_broker="",
                    rate_requests=100000, rate_burst=100000)  # fmt: skip
    node.start()
    try:
        asyncio.run(run(fragments, node))
    finally:
        node.stop()


if __name__ == "__main__":
    main()
