"""Verify a chain of signed batch headers: signatures, sequence, links, and fragments where held.

Checks, each reported as an ``IntegrityError(batch, field, reason)``:

- ``seq``: the headers, in the order given (the ledger order), run first_seq, first_seq+1, ...
  with no gap (a deleted batch), no reorder (swapped batches) and no repeat; with an externally
  recorded head (``expected_last_seq`` or ``expected_head``) a truncated tail is found too;
- ``gateway`` / ``signature``: each header is signed by the gateway key, the key in force at that
  batch (a header carrying a ``rotation`` hands over to the new key from the next batch on);
- ``rotation``: a new key is certified by the key it replaces;
- ``prev``: batch s links the CID of batch s-1's signed header block (batch 0 links nothing);
- ``fragments[i]`` / ``ciphertext``: when ``fragments_lookup(seq)`` returns fragments, each
  matches its piece CID, and any k of them restore a ciphertext with the header's sha256.

Links are checked between batches by sequence number, so a swap is reported once as a reorder,
not as broken links, and an edited header shows as its own ``signature`` and its successor's
``prev``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from nacl.signing import VerifyKey

from gateway.errors import IntegrityError
from gateway.piece.cid import Cid
from gateway.seal.header import BatchHeader
from gateway.seal.rotation import keys_by_batch
from gateway.seal.seal import check_fragments, restore_ciphertext
from gateway.seal.signed import SignedHeader
from gateway.seal.store import Vault

__all__ = ["FragmentsLookup", "VerifyReport", "verify_chain", "verify_vault"]

FragmentsLookup = Callable[[int], Mapping[int, bytes] | None]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``verify_chain`` checked and every problem it found (empty when all is well)."""

    checked: int
    last_seq: int | None
    head: Cid | None
    fragments_checked: int
    problems: tuple[IntegrityError, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_first(self) -> None:
        """Raise the first problem, if any (for callers that want an exception)."""
        if self.problems:
            raise self.problems[0]


def _missing(first: int, last: int, context: str) -> IntegrityError:
    which = f"batch {first} is" if first == last else f"batches {first}..{last} are"
    return IntegrityError(first, "seq", f"{which} missing ({context})")


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous runs of sorted integers: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _sequence_problems(
    seqs: Sequence[int],
    first_seq: int | None,
    expected_last_seq: int | None,
    unreadable: Collection[int] = (),
) -> list[IntegrityError]:
    """Gaps, reorders and repeats in the given order; a tail short of the recorded head."""
    problems: list[IntegrityError] = []
    listed = set(seqs)
    present = listed | set(unreadable)
    seen: set[int] = set()
    highest = (seqs[0] if first_seq is None and seqs else first_seq or 0) - 1
    for seq in seqs:
        if seq in seen:
            problems.append(IntegrityError(seq, "seq", f"batch {seq} appears twice"))
        elif seq <= highest:
            problems.append(
                IntegrityError(seq, "seq", f"out of order: batch {seq} comes after {highest}")
            )
        else:
            skipped = range(highest + 1, seq)
            later = [s for s in skipped if s in listed]
            if later:
                problems.append(
                    IntegrityError(seq, "seq", f"out of order: batch {seq} comes before {later[0]}")
                )
            where = (
                f"batch {seq} follows {highest}" if highest >= 0 else f"the chain starts at {seq}"
            )
            for first, last in _runs([s for s in skipped if s not in present]):
                problems.append(_missing(first, last, where))
            highest = seq
        seen.add(seq)
    highest = max([highest, *unreadable])
    if expected_last_seq is not None and highest < expected_last_seq:
        problems.append(
            _missing(highest + 1, expected_last_seq, f"the recorded head is {expected_last_seq}")
        )
    return problems


def verify_chain(
    headers: Sequence[SignedHeader],
    fragments_lookup: FragmentsLookup | None = None,
    *,
    gateway_key: VerifyKey,
    first_seq: int | None = 0,
    expected_last_seq: int | None = None,
    expected_head: Cid | str | None = None,
    unreadable: Sequence[IntegrityError] = (),
) -> VerifyReport:
    """Check a chain (see the module docstring); returns a report listing every problem.

    ``first_seq=None`` accepts a chain starting anywhere (e.g. after old batches were pruned;
    the first batch's ``prev`` is then taken on trust). ``unreadable`` are the load errors of
    headers that could not be parsed: reported as they are, and not again as missing batches.
    """
    damaged = [p.batch for p in unreadable if isinstance(p.batch, int)]
    problems = list(unreadable)
    problems += _sequence_problems([h.seq for h in headers], first_seq, expected_last_seq, damaged)
    by_seq: dict[int, Cid] = {}
    for signed in headers:
        by_seq.setdefault(signed.seq, signed.cid())
    keys = keys_by_batch(headers, gateway_key)
    fragments_checked = 0
    for signed in sorted(headers, key=lambda h: h.seq):
        problems += _header_problems(signed, keys[signed.seq], by_seq)
        fragments = fragments_lookup(signed.seq) if fragments_lookup else None
        if fragments:
            fragments_checked += len(fragments)
            problems += _fragment_problems(signed.header, fragments)
    if expected_head is not None:
        problems += _head_problems(by_seq, Cid.parse(expected_head))
    problems.sort(key=lambda p: p.batch if isinstance(p.batch, int) else -1)
    return VerifyReport(
        checked=len(headers),
        last_seq=max(by_seq) if by_seq else None,
        head=by_seq[max(by_seq)] if by_seq else None,
        fragments_checked=fragments_checked,
        problems=tuple(problems),
    )


def _header_problems(
    signed: SignedHeader, key: VerifyKey, by_seq: dict[int, Cid]
) -> list[IntegrityError]:
    """Signature under the key the chain of rotations expects, the ``prev`` link, the rotation."""
    header, seq = signed.header, signed.seq
    problems = []
    try:
        signed.check_signature(key)
    except IntegrityError as exc:
        problems.append(exc)
    if seq == 0 and header.prev is not None:
        problems.append(IntegrityError(seq, "prev", "batch 0 must not link a previous batch"))
    elif seq - 1 in by_seq and header.prev != by_seq[seq - 1]:
        problems.append(
            IntegrityError(
                seq, "prev", f"links {header.prev}, but batch {seq - 1} is {by_seq[seq - 1]}"
            )
        )
    if header.rotation is not None and not header.rotation.is_certified_by(key):
        problems.append(
            IntegrityError(seq, "rotation", "new key is not certified by the current key")
        )
    return problems


def _fragment_problems(header: BatchHeader, fragments: Mapping[int, bytes]) -> list[IntegrityError]:
    good, bad = check_fragments(header, fragments)
    problems = list(bad)
    try:
        restore_ciphertext(header, good)
    except IntegrityError as exc:
        problems.append(exc)
    return problems


def _head_problems(by_seq: dict[int, Cid], wanted: Cid) -> list[IntegrityError]:
    if wanted in by_seq.values():
        return []
    last = max(by_seq) if by_seq else "head"
    return [IntegrityError(last, "head", f"no batch has the recorded head CID {wanted}")]


def verify_vault(
    vault: Vault,
    *,
    gateway_key: VerifyKey,
    check_fragments: bool = True,
    first_seq: int | None = 0,
    expected_last_seq: int | None = None,
    expected_head: Cid | str | None = None,
) -> VerifyReport:
    """``verify_chain`` over every batch in ``vault``, damaged header blocks included."""
    headers: list[SignedHeader] = []
    unreadable: list[IntegrityError] = []
    for seq in vault.seqs():
        try:
            headers.append(vault.header(seq))
        except IntegrityError as exc:
            unreadable.append(exc)
    return verify_chain(
        headers,
        vault.fragments if check_fragments else None,
        gateway_key=gateway_key,
        first_seq=first_seq,
        expected_last_seq=expected_last_seq,
        expected_head=expected_head,
        unreadable=unreadable,
    )
