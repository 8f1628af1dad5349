"""PDP on our PDPVerifier stand-in (real anvil): Python's challenge indices, leaf counts and
Merkle paths equal the contract's; the prover proves on chain; every bad proof reverts."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from gateway.chain.pdp import PieceLeaves, challenge_index, data_leaves, locate, prove
from gateway.chain.prover import Prover
from gateway.chain.tx import TxSender
from gateway.errors import TransactionReverted
from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import commp, piece_proof
from gateway.testing.focnet import FocChain
from tests.devnet_support import (
    FWSS,
    PDP,
    PROVING,
    block_number,
    chain_fixture,
    cids_of,
    data_set_with,
    mine,
    snapshot_fixture,
    view,
)

SIZES = (127, 1000, 4096 + 1)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FocChain]:
    yield from chain_fixture(tmp_path_factory)


@pytest.fixture(autouse=True)
def fresh(chain: FocChain) -> Iterator[None]:
    yield from snapshot_fixture(chain)


def _pdp(chain: FocChain, function: str, *args: object) -> tuple[object, ...]:
    return view(chain, PDP, chain.deployment.pdp_verifier, function, *args)


@pytest.mark.parametrize(
    ("seed", "set_id", "i", "size"),
    [
        (0, 0, 0, 1),
        (1, 1, 0, 7),
        (2**256 - 1, 2**256 - 1, 2**64 - 1, 2**255 + 3),
        (12345, 42, 4, 132),
    ],
)
def test_challenge_index_in_python_equals_the_contracts(
    chain: FocChain, seed: int, set_id: int, i: int, size: int
) -> None:
    on_chain = _pdp(chain, "computeChallengeIndex", seed, set_id, i, size)[0]
    assert challenge_index(seed, set_id, i, size) == on_chain


@pytest.mark.parametrize("size", SIZES)
def test_leaf_count_height_and_root_of_a_piece_cid_match_python(chain: FocChain, size: int) -> None:
    info = commp(secrets.token_bytes(size))
    leaves, height, root = _pdp(chain, "parsePieceCid", bytes(piece_cid_v2(info)))
    assert (leaves, height, root) == (data_leaves(info), info.height, info.root)


@pytest.mark.parametrize("size", SIZES)
def test_python_merkle_paths_verify_on_chain_for_non_power_of_two_pieces(
    chain: FocChain, size: int
) -> None:
    payload = secrets.token_bytes(size)
    info = commp(payload)
    for offset in sorted({0, 1, data_leaves(info) // 2, data_leaves(info) - 1}):
        leaf, path = piece_proof(payload, offset)
        assert _pdp(chain, "merkleRoot", leaf, path, offset)[0] == info.root
        wrong_leaf = bytes([leaf[0] ^ 1]) + leaf[1:]
        assert _pdp(chain, "merkleRoot", wrong_leaf, path, offset)[0] != info.root


def test_find_piece_ids_equals_python_locate(chain: FocChain) -> None:
    payloads = [secrets.token_bytes(n) for n in SIZES]
    _, _, set_id = data_set_with(chain, payloads)
    pieces = [PieceLeaves(i, data_leaves(commp(p))) for i, p in enumerate(payloads)]
    total = sum(p.leaves for p in pieces)
    indices = [0, pieces[0].leaves - 1, pieces[0].leaves, total - 1]
    found = _pdp(chain, "findPieceIds", set_id, indices)[0]
    assert [tuple(f) for f in found] == [tuple(vars_of(locate(pieces, i))) for i in indices]


def vars_of(piece: object) -> tuple[int, int]:
    return (piece.piece_id, piece.offset)  # type: ignore[attr-defined]


def _scheduled(chain: FocChain, payloads: list[bytes]) -> tuple[TxSender, int, Prover]:
    provider, _, set_id = data_set_with(chain, payloads)
    fetch = {str(piece_cid_v2(commp(p))): p for p in payloads}
    prover = Prover(provider, chain.deployment, PROVING, fetch.__getitem__)
    assert [r.action for r in prover.step()] == ["scheduled"]
    challenge = _pdp(chain, "getNextChallengeEpoch", set_id)[0]
    assert isinstance(challenge, int)
    mine(chain, challenge - block_number(chain))
    return provider, set_id, prover


def _proofs(
    chain: FocChain, set_id: int, payloads: list[bytes], seed: int | None = None
) -> list[tuple[bytes, list[bytes]]]:
    challenge = _pdp(chain, "getNextChallengeEpoch", set_id)[0]
    seed = _pdp(chain, "getRandomness", challenge)[0] if seed is None else seed  # type: ignore[assignment]
    pieces = [PieceLeaves(i, data_leaves(commp(p))) for i, p in enumerate(payloads)]
    by_id = dict(enumerate(payloads))
    return prove(seed, set_id, sum(p.leaves for p in pieces), pieces, by_id, 5)  # type: ignore[arg-type]


def _prove(
    chain: FocChain, provider: TxSender, set_id: int, proofs: list[tuple[bytes, list[bytes]]]
) -> int:
    data = PDP.calldata("provePossession", set_id, proofs)
    return provider.send(chain.deployment.pdp_verifier, data, what="provePossession").gas_used


def test_prover_proves_a_period_and_the_chain_records_it(chain: FocChain) -> None:
    payloads = [secrets.token_bytes(n) for n in SIZES]
    provider, set_id, prover = _scheduled(chain, payloads)
    results = prover.step()
    assert [r.action for r in results] == ["proven"], results
    receipt = results[0].receipt
    assert receipt is not None
    event = next(log for log in receipt.logs if log.topics[0] == PDP.topic("PossessionProven"))
    challenges = PDP.decode_log("PossessionProven", list(event.topics), event.data)["challenges"]
    assert len(challenges) == 5
    assert _pdp(chain, "getDataSetLastProvenEpoch", set_id)[0] == receipt.block_number
    assert view(chain, FWSS, chain.deployment.fwss, "provenThisPeriod", set_id) == (True,)
    # the same period cannot be proven twice; the prover moves on to the next period instead
    with pytest.raises(TransactionReverted, match="already proven this period"):
        _prove(chain, provider, set_id, _proofs(chain, set_id, payloads))
    assert [r.action for r in prover.step()] == ["scheduled"]


def test_a_wrong_leaf_reverts(chain: FocChain) -> None:
    payloads = [secrets.token_bytes(1000)]
    provider, set_id, _ = _scheduled(chain, payloads)
    proofs = _proofs(chain, set_id, payloads)
    leaf, path = proofs[2]
    proofs[2] = (bytes([leaf[0] ^ 0x01]) + leaf[1:], path)
    with pytest.raises(TransactionReverted, match="proof does not verify"):
        _prove(chain, provider, set_id, proofs)


def test_a_wrong_path_reverts(chain: FocChain) -> None:
    payloads = [secrets.token_bytes(4097)]
    provider, set_id, _ = _scheduled(chain, payloads)
    proofs = _proofs(chain, set_id, payloads)
    leaf, path = proofs[0]
    proofs[0] = (leaf, [path[0], *reversed(path[1:])])
    with pytest.raises(TransactionReverted, match="proof does not verify"):
        _prove(chain, provider, set_id, proofs)
    proofs[0] = (leaf, path[:-1])
    with pytest.raises(TransactionReverted, match="proof length does not match"):
        _prove(chain, provider, set_id, proofs)


def test_a_proof_for_other_challenges_reverts(chain: FocChain) -> None:
    payloads = [secrets.token_bytes(4097)]
    provider, set_id, _ = _scheduled(chain, payloads)
    with pytest.raises(TransactionReverted, match="proof does not verify"):
        _prove(chain, provider, set_id, _proofs(chain, set_id, payloads, seed=12345))


def test_proofs_before_the_challenge_epoch_or_by_others_or_too_few_revert(chain: FocChain) -> None:
    payloads = [secrets.token_bytes(127)]
    provider, _, set_id = data_set_with(chain, payloads)
    with pytest.raises(TransactionReverted, match="no challenge scheduled"):
        _prove(chain, provider, set_id, [(bytes(32), [])])
    fetch = {str(piece_cid_v2(commp(p))): p for p in payloads}
    Prover(provider, chain.deployment, PROVING, fetch.__getitem__).step()
    with pytest.raises(TransactionReverted, match="premature proof"):
        _prove(chain, provider, set_id, [(bytes(32), [])])
    challenge = _pdp(chain, "getNextChallengeEpoch", set_id)[0]
    mine(chain, challenge - block_number(chain))  # type: ignore[operator]
    proofs = _proofs(chain, set_id, payloads)
    with pytest.raises(TransactionReverted, match="only the storage provider"):
        _prove(chain, chain.new_wallet(), set_id, proofs)
    with pytest.raises(TransactionReverted, match="wrong number of challenges"):
        _prove(chain, provider, set_id, proofs[:4])


def test_a_proof_after_the_period_deadline_reverts(chain: FocChain) -> None:
    payloads = [secrets.token_bytes(127)]
    provider, set_id, _ = _scheduled(chain, payloads)
    proofs = _proofs(chain, set_id, payloads)
    mine(chain, PROVING.challenge_window + 1)
    with pytest.raises(TransactionReverted, match="proof past the proving deadline"):
        _prove(chain, provider, set_id, proofs)


def test_next_proving_period_rules(chain: FocChain) -> None:
    provider, _, set_id = data_set_with(chain, [secrets.token_bytes(127)])
    near = block_number(chain) + 1
    data = PDP.calldata("nextProvingPeriod", set_id, near, b"")
    with pytest.raises(TransactionReverted, match="within challenge finality"):
        provider.send(chain.deployment.pdp_verifier, data)
    start = block_number(chain) + 10 + PROVING.max_proving_period
    provider.send(
        chain.deployment.pdp_verifier, PDP.calldata("nextProvingPeriod", set_id, start, b"")
    )
    for epoch, reason in (
        (start + 1, "one challenge per proving period"),
        (start + 10, "outside the challenge window"),
    ):
        with pytest.raises(TransactionReverted, match=reason):
            provider.send(
                chain.deployment.pdp_verifier, PDP.calldata("nextProvingPeriod", set_id, epoch, b"")
            )


def test_beacon_is_deterministic_and_refuses_future_epochs(chain: FocChain) -> None:
    now = block_number(chain)
    assert _pdp(chain, "getRandomness", now) == _pdp(chain, "getRandomness", now)
    assert _pdp(chain, "getRandomness", now) != _pdp(chain, "getRandomness", now - 1)
    with pytest.raises(TransactionReverted, match="beacon randomness unavailable"):
        _pdp(chain, "getRandomness", now + 100)


def test_gas_of_create_add_and_prove(chain: FocChain, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a limit: prints the gas our stand-ins use, for the report and bench/RESULTS.md."""
    payloads = [secrets.token_bytes(n) for n in SIZES]
    _, _, prover = _scheduled(chain, payloads)
    result = prover.step()[0]
    assert result.receipt is not None and result.receipt.gas_used > 0
    with capsys.disabled():
        print(f"\nprovePossession (5 challenges, 3 pieces): {result.receipt.gas_used} gas")
    assert cids_of(payloads)


def test_a_provider_that_lost_its_piece_fails_the_proof_and_stays_unproven(chain: FocChain) -> None:
    payloads = [secrets.token_bytes(1000)]
    provider, set_id, _ = _scheduled(chain, payloads)

    def lost(cid: str) -> bytes:
        raise FileNotFoundError(f"no piece {cid}")

    def corrupted(cid: str) -> bytes:
        return bytes(len(payloads[0]))

    for fetch, reason in ((lost, "no piece"), (corrupted, "proof does not verify")):
        [result] = Prover(provider, chain.deployment, PROVING, fetch).step()
        assert (result.action, result.receipt) == ("failed", None)
        assert reason in result.reason
    assert _pdp(chain, "getDataSetLastProvenEpoch", set_id) == (0,)
    assert view(chain, FWSS, chain.deployment.fwss, "provenThisPeriod", set_id) == (False,)
