"""Restore from this gateway's own state directory: sealed batches, then the unsealed spool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from gateway.config import Config
from gateway.reading import Reading
from gateway.restore import RestoreSummary, write_jsonl
from gateway.spool import Spool

__all__ = ["restore_local"]


def _spool_readings(config: Config) -> Iterator[tuple[Reading, int | None]]:
    spool = Spool(config.state_dir / "spool", config.spool.segment_size)
    try:
        for reading in spool.readings():
            yield reading, None
    finally:
        spool.close()


def restore_local(config: Config, out: TextIO, owner_key: str | None = None) -> RestoreSummary:
    del owner_key  # sealed batches (which need it) are read here once sealing is enabled
    return write_jsonl(_spool_readings(config), out)
