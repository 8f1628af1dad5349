"""A second storage backend beside our market (``[storage] backends``): the protocol the
storage service calls. ``gateway.foc.backend.FocBackend`` implements it; the daemon wires it in
(``gateway/daemon/wiring.py``), so this stage never imports a later one.

The service offers every fragment of a sealed batch (key ``frag/<seq>/<index>``, its piece CID
and size) and asks, before evicting a batch, how many proven copies each fragment has there:
a batch leaves local disk only when every configured backend holds at least k of its
fragments proven (DESIGN section 2, "local copy until proven").
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from gateway.deals.book import Book, fragment_key
from gateway.deals.local import LocalObjects

__all__ = ["Backend", "backends_hold", "load_object", "offer_batch"]


class Backend(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def thread(self) -> threading.Thread | None:
        """The backend's worker thread, for the supervisor (None before ``start``)."""

    def offer(self, key: str, piece_cid: str, size: int) -> None:
        """Store this object (idempotent: an object already placed is left as it is)."""

    def proven_copies(self, key: str) -> int:
        """Distinct providers holding a proven copy of ``key``."""

    def stats(self) -> dict[str, Any]:
        """A JSON-safe status snapshot (no secrets)."""


def load_object(book: Book, local: LocalObjects, key: str) -> bytes | None:
    """The local bytes of ``frag/<seq>/<index>`` or ``dict/<id>`` (None once evicted)."""
    kind, _, rest = key.partition("/")
    if kind == "frag":
        seq_text, _, index_text = rest.partition("/")
        entry = book.batches.get(int(seq_text))
        if entry is None or not index_text.isdecimal() or int(index_text) >= entry.n:
            return None
        return local.fragment(entry.seq, int(index_text), entry.fragments[int(index_text)])
    if kind == "dict" and key in book.objects:
        piece_cid, _ = book.objects[key]
        seqs = sorted(s for s, e in book.batches.items() if e.dictionary == rest)
        return local.dictionary(seqs, rest, piece_cid)
    return None


def offer_batch(backends: Sequence[Backend], book: Book, local: LocalObjects, seq: int) -> None:
    """Every fragment (and the dictionary object) of batch ``seq`` to every backend."""
    entry = book.batches[seq]
    keys = [fragment_key(seq, i) for i in range(entry.n)]
    if entry.dictionary:
        keys.append(f"dict/{entry.dictionary}")
    for key in keys:
        data = load_object(book, local, key)
        if data is None:
            continue
        cid = (
            book.objects[key][0]
            if key.startswith("dict/")
            else entry.fragments[int(key.rsplit("/", 1)[1])]
        )
        for backend in backends:
            backend.offer(key, cid, len(data))


def backends_hold(backends: Sequence[Backend], book: Book, seq: int) -> bool:
    """Every backend has >= k fragments of the batch proven (and its dictionary object)."""
    entry = book.batches[seq]
    for backend in backends:
        proven = sum(1 for i in range(entry.n) if backend.proven_copies(fragment_key(seq, i)))
        if proven < entry.k:
            return False
        if entry.dictionary and not backend.proven_copies(f"dict/{entry.dictionary}"):
            return False
    return True
