"""Pure cores of gateway/deals: placement state machine, budget, selection, discovery, proofs,
range proofs, the event log, the ledger snapshot, pacing and repair."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from gateway.deals.book import Book
from gateway.deals.budget import GIB, BudgetState, deal_price_per_epoch, voucher_due
from gateway.deals.discovery import AskBook, parse_ask
from gateway.deals.eventlog import EventLog, decode_line, encode_line
from gateway.deals.placement import TRANSITIONS, Placement, State
from gateway.deals.proving import check_prove_response, pick_leaves
from gateway.deals.rangeproof import CachedLayer, build_layer
from gateway.deals.repair import piece_cid_of, rebuild_fragments
from gateway.deals.reputation import BANNED, NodeRecord
from gateway.deals.selection import Candidate, Requirement, choose_node, eligible
from gateway.deals.snapshot import BatchRecord, LedgerSnapshot, decode_snapshot, encode_snapshot
from gateway.deals.throttle import TokenBucket, backoff
from gateway.errors import InputError, IntegrityError, StorageError
from gateway.keys import format_gateway_public
from gateway.market.messages import Ask
from gateway.piece.cid import piece_cid_v2, piece_info_from_v2
from gateway.piece.commp import commp, piece_proof
from gateway.seal import seal_batch
from gateway.seal.synthetic import SensorFleet

KEY = SigningKey(b"\x21" * 32)
PROVIDER = format_gateway_public(KEY.verify_key)


def _ask(key: SigningKey = KEY, **changes: Any) -> Ask:
    fields: dict[str, Any] = {
        "provider": format_gateway_public(key.verify_key),
        "url": "http://127.0.0.1:9000",
        "price_per_gib_epoch": 1000,
        "min_piece_size": 128,
        "max_piece_size": 1 << 20,
        "free_bytes": 1 << 20,
        "max_duration_epochs": 10_000,
        "expiry_epoch": 100,
        "seq": 1,
        **changes,
    }
    return Ask(**fields)


# -- placement state machine ---------------------------------------------------------------------


def test_placement_transitions_follow_the_table_exactly() -> None:
    """Every (from, to) pair is allowed iff the table lists it; terminal states are final."""
    base = Placement("p1", "frag/0/0", "cid", PROVIDER, "http://n")
    for start in State:
        placement = base.but(state=start)
        for target in State:
            if target in TRANSITIONS[start]:
                assert placement.to(target).state == target
            else:
                with pytest.raises(ValueError, match="not allowed"):
                    placement.to(target)
    assert not TRANSITIONS[State.FAILED] and not TRANSITIONS[State.EXPIRED]


@given(st.lists(st.sampled_from(list(State)), max_size=30))
def test_random_walks_only_ever_take_allowed_steps(steps: list[State]) -> None:
    placement = Placement(
        "p1",
        "frag/0/0",
        "cid",
        PROVIDER,
        "http://n",
        price_per_epoch=5,
        start_epoch=10,
        end_epoch=20,
    )
    for step in steps:
        try:
            placement = placement.to(step)
        except ValueError:
            assert step not in TRANSITIONS[placement.state]
        assert placement.committed == (50 - placement.paid if placement.live else 0)


# -- budget --------------------------------------------------------------------------------------


@given(st.integers(0, 10**15), st.integers(7, 36))
def test_deal_price_is_the_smallest_the_node_accepts(price: int, log_size: int) -> None:
    size = 1 << log_size
    per_epoch = deal_price_per_epoch(price, size)
    assert per_epoch * GIB >= price * size  # the node's price_below_ask check passes
    assert per_epoch == 0 or (per_epoch - 1) * GIB < price * size


@given(st.integers(0, 10**6), st.integers(0, 1000), st.integers(1, 1000), st.integers(0, 3000))
def test_vouchers_are_cumulative_and_capped(price: int, start: int, length: int, now: int) -> None:
    end = start + length
    due = voucher_due(price, start, end, now)
    assert 0 <= due <= price * length
    assert voucher_due(price, start, end, now + 1) >= due
    assert voucher_due(price, start, end, end + 5) == price * length


@given(st.integers(0, 10**6), st.lists(st.integers(0, 10**5), max_size=40))
def test_budget_is_never_exceeded_by_deals_it_allowed(limit: int, costs: list[int]) -> None:
    spent = committed = 0
    for cost in costs:
        state = BudgetState(limit, spent, committed)
        if state.allows(cost):
            committed += cost
        else:
            assert "raise [storage] budget" in state.refusal(cost, "a deal")
        assert spent + committed <= limit
        paid = committed // 3  # paying moves money from committed to spent
        spent, committed = spent + paid, committed - paid


def test_the_book_accounts_spent_and_committed_from_events() -> None:
    book = Book()
    placement = Placement(
        "p1",
        "frag/0/0",
        "cid",
        PROVIDER,
        "http://n",
        deal_id="d1",
        price_per_epoch=10,
        start_epoch=0,
        end_epoch=100,
    )
    fields = {k: getattr(placement, k) for k in placement.__dataclass_fields__}
    book.apply({"t": "plan", "placement": {**fields, "state": "planned"}})
    assert book.budget(5000) == BudgetState(5000, 0, 1000)
    for state in ("proposed", "accepted", "uploaded"):
        book.apply({"t": "move", "pid": "p1", "state": state})
    book.apply({"t": "proof", "pid": "p1", "ok": True})
    book.apply({"t": "voucher", "pid": "p1", "deal_id": "d1", "nonce": 1, "amount": "300"})
    assert book.budget(5000) == BudgetState(5000, 300, 700)
    book.apply({"t": "move", "pid": "p1", "state": "repairing"})
    assert book.budget(5000) == BudgetState(5000, 300, 0)  # a dropped deal earns no more


# -- selection and reputation --------------------------------------------------------------------


def test_selection_filters_price_space_size_duration_and_exclusions() -> None:
    need = Requirement(padded_size=2048, duration_epochs=100, max_price=5000, now_epoch=10)
    keys = [SigningKey(bytes([i]) * 32) for i in range(1, 7)]
    candidates = [
        Candidate(_ask(keys[0], price_per_gib_epoch=6000)),  # too expensive
        Candidate(_ask(keys[1], free_bytes=1024)),  # no space
        Candidate(_ask(keys[2], max_piece_size=1024)),  # piece too big
        Candidate(_ask(keys[3], max_duration_epochs=50)),  # deal too long
        Candidate(_ask(keys[4], expiry_epoch=5)),  # stale ask
        Candidate(_ask(keys[5], price_per_gib_epoch=10)),
    ]
    assert [eligible(c, need) is None for c in candidates] == [False] * 5 + [True]
    assert choose_node(candidates, need) == candidates[5]
    assert choose_node(candidates, need, exclude={candidates[5].provider}) is None


def test_selection_prefers_reputation_then_price_and_skips_banned_nodes() -> None:
    need = Requirement(2048, 100, 10**9, 10)
    a, b, c = (SigningKey(bytes([i]) * 32) for i in (7, 8, 9))
    good = NodeRecord(format_gateway_public(a.verify_key), "u", reputation=0.9)
    banned = NodeRecord(format_gateway_public(c.verify_key), "u", reputation=BANNED / 2)
    candidates = [
        Candidate(_ask(a, price_per_gib_epoch=500), good),
        Candidate(_ask(b, price_per_gib_epoch=100)),
        Candidate(_ask(c, price_per_gib_epoch=1), banned),
    ]
    assert choose_node(candidates, need) == candidates[0]
    assert choose_node(candidates[1:], need) == candidates[1]


def test_reputation_falls_fast_on_failures_and_recovers_slowly() -> None:
    record = NodeRecord(PROVIDER, "u")
    for _ in range(2):
        record = record.failure("timed out", proof=True)
    assert record.reputation < 0.2 and record.proofs_failed == 2 and record.last_error
    for _ in range(3):
        record = record.success(proof=True)
    assert record.reputation < 0.5 and record.consecutive_failures == 0


# -- discovery -----------------------------------------------------------------------------------


def test_asks_are_verified_and_the_newest_seq_wins() -> None:
    book = AskBook()
    assert book.offer(json.dumps(_ask(seq=2).sign(KEY))) is not None
    assert book.offer(_ask(seq=1, price_per_gib_epoch=1).sign(KEY)) is None  # older
    assert book.asks[PROVIDER].seq == 2
    assert book.offer(_ask(seq=3).sign(SigningKey(b"\x22" * 32))) is None  # not the provider
    unsigned = {"kind": "depin/ask/v1", "body": _ask(seq=4).body()}
    assert book.offer(unsigned) is None
    assert book.offer(_ask(seq=5).sign(KEY), expected_url="http://elsewhere:1") is None
    assert book.rejected == 3 and book.asks[PROVIDER].seq == 2


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_garbage_asks_never_crash_and_never_count(wire: bytes | str) -> None:
    with pytest.raises(InputError):
        parse_ask(wire)


# -- proofs --------------------------------------------------------------------------------------


def _prove_response(payload: bytes, leaves: list[int]) -> dict[str, Any]:
    out = []
    for index in leaves:
        leaf, path = piece_proof(payload, index)
        out.append({"index": index, "leaf": leaf.hex(), "path": [p.hex() for p in path]})
    return {"leaves": out}


def test_honest_proofs_pass_and_tampered_ones_fail() -> None:
    payload = random.Random(1).randbytes(3000)
    cid = piece_cid_v2(commp(payload)).encode()
    leaves = pick_leaves(1 << piece_info_from_v2(cid).height, 5, random.Random(2))
    good = _prove_response(payload, leaves)
    assert check_prove_response(cid, leaves, good).ok
    bad = json.loads(json.dumps(good))
    bad["leaves"][0]["path"][0] = "00" * 32
    assert not check_prove_response(cid, leaves, bad).ok
    assert not check_prove_response(cid, leaves, {"leaves": good["leaves"][1:]}).ok
    other = _prove_response(random.Random(3).randbytes(3000), leaves)
    assert "does not lead" in check_prove_response(cid, leaves, other).reason


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=70),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["leaves", "index", "leaf", "path"]), inner, max_size=4
            )
        ),
        max_leaves=20,
    )
)
def test_garbage_prove_responses_fail_cleanly(response: Any) -> None:
    cid = piece_cid_v2(commp(b"x" * 500)).encode()
    assert not check_prove_response(cid, [0, 1], response).ok


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 70_000), st.integers(0, 2**32), st.integers(1, 10))
def test_range_proofs_accept_true_bytes_and_reject_any_change(
    size: int, seed: int, depth: int
) -> None:
    payload = random.Random(seed).randbytes(size)
    info = commp(payload)
    layer = CachedLayer.from_bytes(build_layer(payload, info, depth).to_bytes())
    assert layer.matches(info)
    assert len(layer.nodes) <= 1 << depth
    for challenge in layer.challenges(info, 3, random.Random(seed)):
        data = payload[challenge.start : challenge.end]
        assert layer.check(challenge, data) is None
        flipped = bytearray(data)
        flipped[seed % len(flipped)] ^= 1
        assert layer.check(challenge, bytes(flipped)) is not None
        assert layer.check(challenge, data[:-1]) is not None


@given(st.binary(max_size=200))
def test_garbage_layer_files_are_rejected(data: bytes) -> None:
    try:
        layer = CachedLayer.from_bytes(data)
    except InputError:
        return
    assert not layer.matches(commp(b"unrelated payload" * 10))


# -- the event log -------------------------------------------------------------------------------


def test_event_log_survives_reopen_truncates_a_torn_tail_and_compacts(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ledger")
    for i in range(5):
        log.append({"t": "evicted", "seq": i})
    log.close()
    segment = next((tmp_path / "ledger").glob("*.jsonl"))
    with open(segment, "ab") as handle:
        handle.write(encode_line({"t": "evicted", "seq": 99})[:-7])  # a torn last record
    log = EventLog(tmp_path / "ledger")
    assert [e["seq"] for e in log.events] == [0, 1, 2, 3, 4] and log.truncated > 0
    log.compact([{"t": "evicted", "seq": 7}])
    log.append({"t": "evicted", "seq": 8})
    log.close()
    assert [e["seq"] for e in EventLog(tmp_path / "ledger").events] == [7, 8]
    assert len(list((tmp_path / "ledger").glob("*.jsonl"))) == 1


def test_event_log_damage_before_the_tail_is_an_error(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ledger")
    for i in range(3):
        log.append({"t": "evicted", "seq": i})
    log.close()
    segment = next((tmp_path / "ledger").glob("*.jsonl"))
    data = bytearray(segment.read_bytes())
    data[12] ^= 1
    segment.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="damaged ledger record at byte 0"):
        EventLog(tmp_path / "ledger")


@given(st.binary(max_size=120))
def test_garbage_lines_never_decode_into_events(line: bytes) -> None:
    event = decode_line(line)
    assert event is None or encode_line(event)[:-1] == line or isinstance(event["t"], str)


# -- snapshot, repair, pacing --------------------------------------------------------------------


def _batch(seq: int = 0, m: int = 2) -> Any:
    return seal_batch(
        SensorFleet(seed=9).readings(30),
        identity=KEY,
        owners=[PrivateKey(b"\x23" * 32).public_key],
        seq=seq,
        prev=None,
        m=m,
    )


def test_snapshot_round_trips_and_names_every_location() -> None:
    batch = _batch()
    record = BatchRecord(
        0,
        batch.header_block,
        tuple((cid, ("http://a", "http://b")) for cid in batch.signed.header.fragments),
        None,
    )
    snapshot = LedgerSnapshot(PROVIDER, 3, None, (record,), {"dict1": ("piece", ("http://c",))})
    data = encode_snapshot(snapshot)
    assert len(data) >= 127
    decoded = decode_snapshot(data)
    assert decoded == snapshot
    assert decoded.headers()[0] == batch.signed
    with pytest.raises(IntegrityError):
        decode_snapshot(data[:-1])


@given(st.binary(max_size=400))
def test_garbage_snapshots_are_integrity_errors(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_snapshot(data)


def test_repair_rebuilds_any_lost_fragment_byte_for_byte() -> None:
    batch = _batch()
    header = batch.signed.header
    survivors = {i: batch.fragments[i] for i in (1, 3, 4, 5)}
    rebuilt = rebuild_fragments(header, survivors, [0, 2])
    assert rebuilt == {0: batch.fragments[0], 2: batch.fragments[2]}
    assert piece_cid_of(rebuilt[0]) == header.fragments[0]
    with pytest.raises(IntegrityError):
        rebuild_fragments(header, {1: batch.fragments[1], 3: batch.fragments[3]}, [0])


def test_token_bucket_paces_to_the_configured_rate() -> None:
    bucket = TokenBucket(rate=1000, burst=1000)
    assert bucket.delay(1000, now=0.0) == 0.0  # the burst
    assert bucket.delay(500, now=0.0) == pytest.approx(0.5)
    assert bucket.delay(500, now=1.5) == pytest.approx(0.0)
    assert TokenBucket(rate=0, burst=1).delay(10**9, now=0.0) == 0.0
    rng = random.Random(4)
    assert all(0 <= backoff(a, rng) <= 10 for a in range(50))
