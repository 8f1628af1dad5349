"""The replay cache, persisted in the data directory so a restart does not reopen the window.

Format (version 1), ``data_dir/replay/<start>.v1``: append-only segments, each opened by the
line ``depin-node-replay 1`` and then one line per accepted signed request::

    <created unix seconds> <keyid> <nonce>\\n

A new segment starts every ``segment_seconds`` (``2 * max_skew``); segment ``<start>`` only
holds requests that arrived in ``[start, start + segment_seconds)``, whose signatures are all
stale once ``start + segment_seconds + 2 * max_skew`` has passed, so whole segments are
deleted then and no file is ever rewritten. Each request costs one small ``write`` (no fsync:
the entry survives a crash or restart of the process, which is what a replay would exploit;
on power loss the last seconds' nonces may be lost, and the requests they guard are idempotent:
re-posting a proposal returns the stored acceptance, voucher nonces must grow, a second upload
is a 409). Lines that do not parse (a torn tail) are skipped; so are unknown versions' files.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from gateway.errors import StorageError
from gateway.market.httpsig import ReplayCache

__all__ = ["FORMAT_VERSION", "PersistentReplayCache"]

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
_HEADER = f"depin-node-replay {FORMAT_VERSION}\n".encode()
_SEGMENT = re.compile(r"^(\d{1,15})\.v1$")
_LINE = re.compile(rb"^(\d{1,15}) (ed25519:[0-9a-f]{64}) ([A-Za-z0-9_-]{8,64})$")


class PersistentReplayCache(ReplayCache):
    def __init__(
        self, directory: Path, max_skew: int, now: int, max_entries: int = 100_000
    ) -> None:
        super().__init__(max_entries)
        self.directory = directory
        self.max_skew = max_skew
        self.segment_seconds = 2 * max_skew
        self._fd: int | None = None
        self._segment_start = -1
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._load(now)
        except OSError as exc:
            raise StorageError(str(directory), f"cannot read the replay cache: {exc}") from exc

    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.iterdir():
            match = _SEGMENT.match(path.name)
            if match:
                found.append((int(match[1]), path))
        return sorted(found)

    def _load(self, now: int) -> None:
        oldest = now - 2 * self.max_skew
        for start, path in self._segments():
            if self._expired(start, now):
                path.unlink(missing_ok=True)
                continue
            data = path.read_bytes()
            if not data.startswith(_HEADER):
                log.warning("ignoring replay segment %s: not format version 1", path)
                continue
            for line in data[len(_HEADER) :].split(b"\n"):
                match = _LINE.match(line)
                if match and int(match[1]) >= oldest and len(self) < self.max_entries:
                    self.add_known(match[2].decode(), match[3].decode(), int(match[1]))

    def _expired(self, start: int, now: int) -> bool:
        return now > start + self.segment_seconds + 2 * self.max_skew

    def record(self, keyid: str, nonce: str, created: int, now: int) -> None:
        line = f"{created} {keyid} {nonce}\n".encode()
        try:
            # one small append per signed request, in the event loop on purpose: it must be in
            # the file before the request is acted on, and it costs less than a thread hop
            os.write(self._segment_fd(now), line)
        except OSError as exc:
            raise StorageError(str(self.directory), f"cannot record a nonce: {exc}") from exc

    def _segment_fd(self, now: int) -> int:
        start = now - now % self.segment_seconds
        if self._fd is not None and start == self._segment_start:
            return self._fd
        self.close()
        path = self.directory / f"{start}.v1"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if os.fstat(fd).st_size == 0:
            os.write(fd, _HEADER)
        self._fd, self._segment_start = fd, start
        for old_start, old in self._segments():
            if self._expired(old_start, now):
                old.unlink(missing_ok=True)
        return fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
