"""Core of ``depin-gateway piece-cid FILE... [--json]``: commP and piece CIDs of files.

Each file is streamed (bounded memory, any size). Text output is a small block per file; JSON is
one object per line with keys file, payload_size, padded_size, piece_cid_v1, piece_cid_v2. A file
that cannot be read gets one line on ``err`` and the exit status becomes 1; the others still print.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from gateway.errors import GatewayError
from gateway.piece.cid import piece_cid_v1, piece_cid_v2
from gateway.piece.commp import commp_file

__all__ = ["piece_cid_main"]


def piece_cid_main(paths: list[str], as_json: bool, out: TextIO, err: TextIO | None = None) -> int:
    """Print payload size, padded size and piece CIDs v1/v2 of each file; 0 if all were read."""
    errors = sys.stderr if err is None else err
    status = 0
    for path in paths:
        try:
            info = commp_file(path)
        except GatewayError as exc:
            print(f"piece-cid: {exc}", file=errors)
            status = 1
            continue
        v1, v2 = str(piece_cid_v1(info.root)), str(piece_cid_v2(info))
        if as_json:
            record = {
                "file": path,
                "payload_size": info.payload_size,
                "padded_size": info.padded_size,
                "piece_cid_v1": v1,
                "piece_cid_v2": v2,
            }
            print(json.dumps(record), file=out)
        else:
            print(
                f"{path}\n"
                f"  payload size  {info.payload_size} bytes\n"
                f"  padded size   {info.padded_size} bytes\n"
                f"  piece CID v1  {v1}\n"
                f"  piece CID v2  {v2}",
                file=out,
            )
    return status
