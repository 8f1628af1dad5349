"""The real FOC client against our node: synapse-core's own PDP calls (npm ``@filoz/synapse-core``
pinned in package-lock.json, installed by ``make node_modules/.installed``) run by Node.js
(``tests/js/synapse_client.mjs``) against a real node process on 127.0.0.1, and the node's side
checked on disk: each piece stored under the CID Synapse computed, its commP recomputed here."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import commp
from gateway.testing.node_client import NodeProcess

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "js" / "synapse_client.mjs"
SYNAPSE = ROOT / "node_modules" / "@filoz" / "synapse-core" / "package.json"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    running = NodeProcess(tmp_path)
    running.start()
    yield running
    assert running.stop() == 0
    assert "Traceback" not in running.log()


def _synapse(url: str) -> dict[str, Any]:
    assert shutil.which("node"), "Node.js is needed (node 20+)"
    assert SYNAPSE.exists(), "run `make node_modules/.installed` (npm ci of package-lock.json)"
    done = subprocess.run(
        ["node", str(SCRIPT), url],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _stored(node: NodeProcess, cid: str) -> bytes:
    data = (node.config.data_dir / "pieces" / cid).read_bytes()
    assert str(piece_cid_v2(commp(data))) == cid, "the node's bytes have the CID Synapse computed"
    return data


def test_synapse_core_uploads_finds_and_downloads_from_our_node(node: NodeProcess) -> None:
    """ping, uploadPiece (twice: the second is a 200 with nothing to send), uploadPieceStreaming,
    findPiece (held, and missing: Synapse's own FindPieceError), download and
    downloadAndValidate (commP re-checked by Synapse), and a Range read."""
    out = _synapse(node.url)
    assert out["ping"] == "ok"
    upload, streaming = out["upload"], out["streaming"]
    assert upload["found"] == upload["pieceCid"]
    assert out["uploadAgain"] == "ok"
    assert streaming["pieceCid"] == streaming["expected"] == streaming["found"]
    assert streaming["size"] == 70000
    assert out["findMissing"].startswith("FindPieceError")
    assert out["download"] == {"equal": True, "validated": True}
    assert out["range"] == {"status": 206, "contentRange": "bytes 100-1099/5000", "equal": True}
    for piece in (upload, streaming):
        data = _stored(node, piece["pieceCid"])
        assert hashlib.sha256(data).hexdigest() == piece["sha256"]
        # no deal and no data set claims them yet: parked, with their keep-window deadline
        assert (node.config.data_dir / "parked" / f"{piece['pieceCid']}.json").exists()
