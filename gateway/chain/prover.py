"""The provider side of PDP on the devnet: schedule each proving period and prove it on chain.

One ``step()`` looks at every data set this wallet is the storage provider of and does at most
one transaction per set:

    no challenge yet / challenged period proven or over  ->  nextProvingPeriod(next window)
    challenge epoch reached, period open and unproven    ->  provePossession(5 proofs)
    otherwise (waiting for the challenge epoch)           ->  nothing

Challenge epochs follow our FWSS stand-in's rule: periods of ``max_proving_period`` epochs from
the activation epoch, the challenge inside a period's last ``challenge_window`` epochs and at
least ``challenge_finality`` epochs ahead. Piece bytes come from an injected ``fetch`` (the
devnet reads ``GET /piece/{cid}`` from the provider's node), so a provider that lost a piece
cannot prove it: the proof reverts and the period stays unproven, unpaid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gateway.chain.abi import abi_of
from gateway.chain.deploy import Deployment, ProvingConfig
from gateway.chain.jsonrpc import parse_quantity
from gateway.chain.pdp import PieceLeaves, challenge_index, locate, prove
from gateway.chain.tx import Receipt, TxSender
from gateway.errors import ChainError, GatewayError
from gateway.piece.cid import Cid

__all__ = ["Prover", "StepResult", "next_challenge_epoch"]

CHALLENGES_PER_PROOF = 5  # FWSS CHALLENGES_PER_PROOF
_MARGIN = 2  # epochs between reading the block number and the transaction being mined


def next_challenge_epoch(
    proving: ProvingConfig, block: int, activation: int, scheduled: int
) -> int:
    """The earliest valid challenge epoch after ``scheduled`` (0: none yet) seen at ``block``."""
    period, window = proving.max_proving_period, proving.challenge_window
    earliest = block + proving.challenge_finality + _MARGIN
    if activation == 0:
        return max(earliest, period - window + 1)
    k = (scheduled - activation) // period + 1
    while True:
        start, end = activation + k * period + period - window, activation + (k + 1) * period
        if max(start, earliest) < end:
            return max(start, earliest)
        k += 1


@dataclass(frozen=True, slots=True)
class StepResult:
    set_id: int
    action: Literal["scheduled", "proven", "failed"]
    receipt: Receipt | None = None
    reason: str = ""


class Prover:
    def __init__(
        self,
        sender: TxSender,
        deployment: Deployment,
        proving: ProvingConfig,
        fetch: Callable[[str], bytes],
    ) -> None:
        self.sender = sender
        self.deployment = deployment
        self.proving = proving
        self._fetch = fetch
        self._pdp = abi_of("PDPVerifier")
        self._contracts = {
            "pdp": (self._pdp, deployment.pdp_verifier),
            "fwss": (abi_of("FilecoinWarmStorageService"), deployment.fwss),
        }

    def _view(self, contract: str, function: str, *args: object) -> tuple[object, ...]:
        """A view of the PDPVerifier (``contract="pdp"``) or of FWSS (``"fwss"``)."""
        abi, to = self._contracts[contract]
        return abi.decode(function, self.sender.call(to, abi.calldata(function, *args), function))

    def _int(self, contract: str, function: str, *args: object) -> int:
        value = self._view(contract, function, *args)[0]
        if not isinstance(value, int):
            raise ChainError(self.sender.rpc.url, f"{function} did not return an integer")
        return value

    def my_data_sets(self) -> list[int]:
        mine = []
        for set_id in range(1, self._int("pdp", "getNextDataSetId")):
            provider = self._view("pdp", "getDataSetStorageProvider", set_id)[0]
            if str(provider).lower() == self.sender.address.lower():
                mine.append(set_id)
        return mine

    def step(self) -> list[StepResult]:
        block = parse_quantity(self.sender.rpc.call("eth_blockNumber"), rpc="", what="block")
        results = []
        for set_id in self.my_data_sets():
            if self._int("pdp", "getDataSetLeafCount", set_id) == 0:
                continue
            result = self._step_one(set_id, block)
            if result is not None:
                results.append(result)
        return results

    def _step_one(self, set_id: int, block: int) -> StepResult | None:
        activation = self._int("fwss", "provingActivationEpoch", set_id)
        challenge = self._int("pdp", "getNextChallengeEpoch", set_id)
        if activation == 0 or challenge == 0:
            return self._schedule(set_id, block, activation, challenge)
        period = (challenge - activation) // self.proving.max_proving_period
        end = activation + (period + 1) * self.proving.max_proving_period
        proven = bool(self._view("fwss", "provenPeriod", set_id, period)[0])
        if proven or block + 1 >= end:
            return self._schedule(set_id, block, activation, challenge)
        if block < challenge:
            return None
        return self._prove(set_id)

    def _schedule(self, set_id: int, block: int, activation: int, scheduled: int) -> StepResult:
        epoch = next_challenge_epoch(self.proving, block, activation, scheduled)
        data = self._pdp.calldata("nextProvingPeriod", set_id, epoch, b"")
        try:
            receipt = self.sender.send(self.deployment.pdp_verifier, data, what="nextProvingPeriod")
        except GatewayError as exc:
            return StepResult(set_id, "failed", reason=str(exc))
        return StepResult(set_id, "scheduled", receipt)

    def pieces(self, set_id: int) -> list[PieceLeaves]:
        count = self._int("pdp", "getNextPieceId", set_id)
        return [
            PieceLeaves(pid, self._int("pdp", "getPieceLeafCount", set_id, pid))
            for pid in range(count)
        ]

    def _prove(self, set_id: int) -> StepResult:
        challenge = self._int("pdp", "getNextChallengeEpoch", set_id)
        seed = self._int("pdp", "getRandomness", challenge)
        challenge_range = self._int("pdp", "getChallengeRange", set_id)
        pieces = [p for p in self.pieces(set_id) if p.leaves]
        try:
            payloads = {}
            wanted = {
                locate(pieces, challenge_index(seed, set_id, i, challenge_range)).piece_id
                for i in range(CHALLENGES_PER_PROOF)
            }
            for piece in (p for p in pieces if p.piece_id in wanted):
                raw = self._view("pdp", "getPieceCid", set_id, piece.piece_id)[0]
                cid = str(Cid.parse(bytes(raw[0])))  # type: ignore[index]
                payloads[piece.piece_id] = self._fetch(cid)
            proofs = prove(seed, set_id, challenge_range, pieces, payloads, CHALLENGES_PER_PROOF)
            data = self._pdp.calldata("provePossession", set_id, proofs)
            receipt = self.sender.send(self.deployment.pdp_verifier, data, what="provePossession")
        except (GatewayError, OSError, ValueError) as exc:
            # OSError: the piece could not be read (a provider that lost it, a node that is
            # down). The period stays unproven, and so unpaid; the next step tries again.
            return StepResult(set_id, "failed", reason=str(exc) or type(exc).__name__)
        return StepResult(set_id, "proven", receipt)
