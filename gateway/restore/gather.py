"""The one "any k of n" step of every restore: complete a batch's fragments from a source.

Local restore starts from the fragments still in the vault and fetches the rest from the nodes
the storage ledger names; network restore starts from none and fetches with the snapshot's hints
(chain restore will fetch from the providers its data sets name). All of them decide the same
way which fragments to ask for, and fail the same way when fewer than k can be had.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.errors import IntegrityError
from gateway.seal.signed import SignedHeader

__all__ = ["FetchFragment", "gather_fragments"]

# (fragment index, its piece CID) -> the verified bytes, or None where no source has them
FetchFragment = Callable[[int, str], bytes | None]


def gather_fragments(
    signed: SignedHeader, have: Mapping[int, bytes], fetch: FetchFragment
) -> dict[int, bytes]:
    """``have`` completed to k fragments (data first, then parity) through ``fetch``."""
    k = signed.header.erasure.k
    found = dict(have)
    for index, piece in enumerate(signed.header.fragments):
        if len(found) >= k:
            break
        if index not in found:
            data = fetch(index, piece)
            if data is not None:
                found[index] = data
    if len(found) < k:
        raise IntegrityError(
            signed.seq, "fragments", f"need {k} fragments, have {len(found)} (no node had more)"
        )
    return found
