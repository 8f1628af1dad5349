"""zstd compression of encoded batches, with dictionaries trained per topic family.

A batch is small (a few hundred readings of 100-200 bytes each), so plain zstd spends most of its
output learning the JSON shape again in every batch. A dictionary trained on recent payloads
removes that cost. Training is fed *per topic family* so that one chatty sensor type cannot crowd
out the others: each family keeps a bounded window of its newest payloads and the dictionary is
trained on all windows together.

A **topic family** is the topic with identifier-like levels and the last ``depth`` levels
replaced by ``+`` (MQTT's single-level wildcard)::

    city/berlin/node-0042/air   ->  city/berlin/+/+        (depth 1; "node-0042" holds a digit)
    serial:pms0 on /dev/ttyUSB0 ->  serial:pms0            (a serial source is its own family)

With too little sample data ``DictionaryTrainer.train`` returns ``None`` and batches are compressed
without a dictionary. How a trained dictionary is stored (encrypted, content-addressed) is
``gateway.seal.dictionary``'s business; this module only compresses.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

import zstandard

from gateway.reading import Reading

__all__ = [
    "CompressionError",
    "DictionaryTrainer",
    "ZstdDictionary",
    "compress",
    "decompress",
    "topic_family",
]

MAX_PLAINTEXT = 1 << 30  # a batch never decompresses beyond 1 GiB, whatever its header claims


class CompressionError(ValueError):
    """Compressed data is damaged or needs a different dictionary (the caller names the batch)."""


@dataclass(frozen=True, slots=True)
class ZstdDictionary:
    """A trained zstd dictionary (plaintext bytes; never stored unencrypted off the gateway)."""

    data: bytes

    def __post_init__(self) -> None:
        if len(self.data) < 8:
            raise ValueError("a zstd dictionary is at least 8 bytes")

    @property
    def zstd_id(self) -> int:
        """The dictionary id zstd writes into each frame (0 for a raw-content dictionary)."""
        return int(zstandard.ZstdCompressionDict(self.data).dict_id())

    def _compiled(self) -> zstandard.ZstdCompressionDict:
        return zstandard.ZstdCompressionDict(self.data)


def topic_family(reading: Reading, depth: int = 1) -> str:
    """The family a reading's payload is trained in (see the module docstring)."""
    if reading.source != "mqtt":
        return reading.source
    levels = reading.topic.split("/")
    keep = max(len(levels) - depth, 0)
    return "/".join(
        "+" if i >= keep or any(c.isdigit() for c in level) else level
        for i, level in enumerate(levels)
    )


class DictionaryTrainer:
    """Bounded windows of recent payloads per topic family; trains one dictionary over them.

    Pure and deterministic: the same observations give the same dictionary.
    """

    def __init__(
        self,
        *,
        dict_size: int = 16 * 1024,
        per_family: int = 512,
        max_families: int = 64,
        min_samples: int = 64,
        min_bytes: int = 8 * 1024,
        depth: int = 1,
    ) -> None:
        if dict_size < 256 or per_family < 1 or max_families < 1:
            raise ValueError("dictionary trainer limits must be positive (dict_size >= 256)")
        self._dict_size = dict_size
        self._per_family = per_family
        self._max_families = max_families
        self._min_samples = min_samples
        self._min_bytes = min_bytes
        self._depth = depth
        self._windows: OrderedDict[str, deque[bytes]] = OrderedDict()

    def observe(self, reading: Reading) -> None:
        """Add one reading's payload to its family's window (the least recent family is dropped)."""
        if not reading.payload:
            return
        family = topic_family(reading, self._depth)
        window = self._windows.get(family)
        if window is None:
            window = self._windows[family] = deque(maxlen=self._per_family)
            while len(self._windows) > self._max_families:
                self._windows.popitem(last=False)
        self._windows.move_to_end(family)
        window.append(reading.payload)

    def families(self) -> dict[str, int]:
        """Family -> number of samples held (for status and tests)."""
        return {family: len(window) for family, window in self._windows.items()}

    def samples(self) -> list[bytes]:
        return [payload for window in self._windows.values() for payload in window]

    def train(self, level: int = 3) -> ZstdDictionary | None:
        """A dictionary over every family's window, or ``None`` when there is too little data."""
        samples: list[bytes | bytearray | memoryview] = list(self.samples())
        if len(samples) < self._min_samples or sum(map(len, samples)) < self._min_bytes:
            return None
        try:
            trained = zstandard.train_dictionary(self._dict_size, samples, level=level, threads=0)
        except zstandard.ZstdError:
            return None  # zstd found nothing worth a dictionary: compress without one
        return ZstdDictionary(trained.as_bytes())


_MAX_TABLE_LOG = 18  # zstd hash/chain table entries (log2) for sealing, see compress()


def compress(data: bytes, *, level: int, dictionary: ZstdDictionary | None = None) -> bytes:
    """One zstd frame with the content size recorded (checksums are the AEAD's job)."""
    dict_data = dictionary._compiled() if dictionary else None
    params = zstandard.ZstdCompressionParameters.from_level(level, source_size=len(data))
    # High levels size their match tables for multi-MB windows: at level 19 a 0.9 MB batch got
    # 2**21-entry hash and chain tables (a 17 MB context, the seal worker's RSS peak). 2**18
    # entries gave the same or smaller frames on the bench batches (242,032 -> 241,987 B; 79,574
    # -> 79,565 B), a 3.3 MB context and ~30 % less time. Any zstd decoder reads the frames.
    params = zstandard.ZstdCompressionParameters.from_level(
        level, source_size=len(data), write_checksum=0, write_content_size=1,
        chain_log=min(params.chain_log, _MAX_TABLE_LOG),
        hash_log=min(params.hash_log, _MAX_TABLE_LOG),
    )  # fmt: skip
    compressor = zstandard.ZstdCompressor(compression_params=params, dict_data=dict_data)
    return bytes(compressor.compress(data))


def decompress(data: bytes, *, dictionary: ZstdDictionary | None = None) -> bytes:
    """Inverse of ``compress``; damage or a wrong dictionary raises ``CompressionError``."""
    decompressor = zstandard.ZstdDecompressor(
        dict_data=dictionary._compiled() if dictionary else None
    )
    try:
        params = zstandard.get_frame_parameters(data)
        if params.content_size > MAX_PLAINTEXT:
            raise CompressionError(f"frame claims {params.content_size} bytes, over the limit")
        return bytes(decompressor.decompress(data, max_output_size=MAX_PLAINTEXT))
    except zstandard.ZstdError as exc:
        raise CompressionError(f"zstd: {exc}") from exc
