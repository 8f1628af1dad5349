"""The storage node's state and operations, independent of HTTP (asyncio; disk via threads).

``NodeService`` owns the in-memory view (pieces held, deal records, pending uploads), persists
every change before it is acknowledged (checkpoint, then act), and is the only writer of the data
directory. Time comes from the injected ``clock`` (unix seconds) and ``monotonic``; the HTTP layer
(``server``) only parses requests and maps ``ClientError`` to status codes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey

from gateway.errors import InputError, KeyMaterialError
from gateway.keys import format_gateway_public
from gateway.market.epoch import epoch_at, epochs_for
from gateway.market.messages import Ask, DealAcceptance, DealProposal, Voucher
from gateway.node.auth import AuthOps
from gateway.node.chainport import PdpChain
from gateway.node.client_error import ClientError, provider_id_for
from gateway.node.config import NodeConfig
from gateway.node.datasets import DataSetOps
from gateway.node.deals import DealEvent, DealRecord, DealState, apply_voucher
from gateway.node.lifecycle import LifecycleOps
from gateway.node.pieces import PieceOps
from gateway.node.policy import DealTerms, judge
from gateway.node.prooftree import ProofTrees
from gateway.node.public import PublicUploadOps
from gateway.node.ratelimit import RateLimiter
from gateway.node.replaylog import PersistentReplayCache
from gateway.node.reservations import (
    ReservationLimits,
    by_piece,
    check_reservation,
    holding,
    is_reserving,
)
from gateway.node.store import PieceStore, UploadFile
from gateway.node.unclaimed import Parked, UnclaimedLimits, UploadSession
from gateway.piece.commp import PieceInfo

__all__ = ["ClientError", "NodeService", "provider_id_for"]

log = logging.getLogger(__name__)
Clock = Callable[[], float]
_REJECTED_KEPT = 1000
_REPLAY_ENTRIES = 200_000  # ~60 MB at most; the per-address rate limit fills it slowly


@dataclass(frozen=True, slots=True)
class Rejection:
    acceptance: Mapping[str, Any]
    proposal: DealProposal
    reason: str


def _limits(config: NodeConfig) -> tuple[ReservationLimits, UnclaimedLimits]:
    """What deal reservations and uploads without a deal may hold (from ``[node]``)."""
    reservations = ReservationLimits(
        ttl=config.reservation_ttl,
        per_client=config.max_reserved_per_client,
        per_address=config.max_reserved_per_address,
        unpaid_total=config.max_unpaid_reserved,
        grace_epochs=epochs_for(config.payment_grace),
        per_address_deals=4 * config.max_pending_deals,
    )
    unclaimed = UnclaimedLimits(
        keep=config.unclaimed_keep,
        session_ttl=config.reservation_ttl,
        total=config.max_unclaimed,
        per_address=config.max_unclaimed_per_address,
        sessions_per_address=4 * config.max_pending_deals,
    )
    return reservations, unclaimed


class NodeService(AuthOps, PieceOps, PublicUploadOps, DataSetOps, LifecycleOps):
    def __init__(
        self,
        config: NodeConfig,
        key: SigningKey,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        chain: PdpChain | None = None,
    ) -> None:
        """``chain``: the data-set routes' port (``None``: they answer 501)."""
        self.config = config
        self.chain = chain
        self.key = key
        self.provider = format_gateway_public(key.verify_key)
        self.provider_id = config.provider_id or provider_id_for(self.provider)
        self.clock = clock
        self.monotonic = monotonic
        self.url = config.public_url or f"http://{config.listen}"
        self.store = PieceStore(config.data_dir)
        self.trees = ProofTrees(self.store.trees_dir)
        self.pieces: dict[str, PieceInfo] = self.store.scan_pieces()
        self.deals: dict[str, DealRecord] = {d.deal_id: d for d in self.store.load_deals()}
        self.uploading: set[str] = set()
        self.sessions: dict[str, UploadSession] = {}
        self.finished: dict[str, tuple[UploadFile, PieceInfo]] = {}
        self.parked: dict[str, Parked] = self.store.load_parked()
        self.txs = self.load_txs()
        self.retrieved: dict[str, float] = {}  # piece -> last full read (unix), piece status
        self.rejected: OrderedDict[str, Rejection] = OrderedDict()
        self.replay = PersistentReplayCache(
            config.data_dir / "replay", config.max_skew, int(clock()), _REPLAY_ENTRIES
        )
        self.requests = RateLimiter(config.rate_requests, config.rate_burst)
        self.upload_bytes = RateLimiter(config.upload_rate, config.upload_burst)
        self.refusals: Counter[str] = Counter()
        # the connection guard's counters when serving (runner), shown in status
        self.connection_counts: dict[str, int] = {}
        self.started = monotonic()
        self._ask_seq = 0
        self._lock = asyncio.Lock()
        self.terms = DealTerms(
            provider=self.provider,
            price_per_gib_epoch=config.price,
            min_piece_size=config.min_piece_size,
            max_piece_size=config.max_piece_size,
            min_duration_epochs=config.min_duration_epochs,
            max_duration_epochs=config.max_duration_epochs,
            max_start_delay_epochs=epochs_for(config.max_start_delay),
            max_pending_deals=config.max_pending_deals,
        )
        self.limits, self.unclaimed_limits = _limits(config)

    # time, space, identity ------------------------------------------------------------------

    def epoch(self) -> int:
        return epoch_at(self.clock())

    def reserving(self, record: DealRecord) -> bool:
        return is_reserving(record, self.clock(), self.limits.ttl, self.uploading)

    def reservations(self) -> list[DealRecord]:
        """Accepted deals whose reservation still holds (lapsed ones hold nothing, even before
        the garbage collector marks them failed)."""
        return holding(
            self.deals.values(), self.pieces, self.clock(), self.limits.ttl, self.uploading
        )

    @property
    def reserved_bytes(self) -> int:
        return sum(d.proposal.piece_size for d in by_piece(self.reservations()).values())

    @property
    def free_bytes(self) -> int:
        """Capacity less what is stored, reserved by deals, and arriving without a deal."""
        arriving = sum(s.counted for s in self.sessions.values())
        return max(0, self.config.capacity - self.used_bytes - self.reserved_bytes - arriving)

    def ask(self) -> dict[str, Any]:
        """A freshly signed ask (seq grows with the clock, and by one at least)."""
        self._ask_seq = max(self._ask_seq + 1, int(self.clock() * 1000))
        return Ask(
            provider=self.provider,
            url=self.url,
            price_per_gib_epoch=self.config.price,
            min_piece_size=self.config.min_piece_size,
            max_piece_size=self.config.max_piece_size,
            free_bytes=self.free_bytes,
            max_duration_epochs=self.config.max_duration_epochs,
            expiry_epoch=self.epoch() + epochs_for(self.config.ask_ttl),
            seq=self._ask_seq,
        ).sign(self.key)

    async def _save(self, record: DealRecord) -> None:
        await asyncio.to_thread(self.store.save_deal, record)
        self.deals[record.deal_id] = record

    # deals ----------------------------------------------------------------------------------

    def _open_proposal(self, wire: Any, client: str) -> DealProposal:
        try:
            proposal, signer = DealProposal.open(wire)
        except (InputError, KeyMaterialError) as exc:  # a bad client/provider key: KeyMaterialError
            raise self.refuse(ClientError(400, "bad_request", f"deal proposal: {exc}")) from None
        if format_gateway_public(signer) != proposal.client:
            raise self.refuse(
                ClientError(400, "bad_request", "deal proposal is not signed by its client")
            )
        if proposal.client != client:
            raise self.refuse(
                ClientError(
                    403, "not_your_deal", "request signed by a key other than the proposal's client"
                )
            )
        return proposal

    async def propose(
        self, wire: Any, client: str, address: str = ""
    ) -> tuple[int, Mapping[str, Any]]:
        """(HTTP status, signed acceptance) for a signed proposal from the verified ``client``
        (``address``: the request's remote address, for the per-address reservation cap)."""
        proposal = self._open_proposal(wire, client)
        deal_id = proposal.deal_id()
        async with self._lock:
            existing = self.deals.get(deal_id)
            if existing is not None:
                return 200, existing.acceptance_wire
            epoch = self.epoch()
            await self._lapse_reservations(epoch)
            refusal = self._judge(proposal, client, address, epoch)
            if refusal is not None:
                self.refusals[refusal.code] += 1
                acceptance = self._acceptance(proposal, deal_id, False, str(refusal), "", epoch)
                self.rejected[deal_id] = Rejection(acceptance, proposal, str(refusal))
                while len(self.rejected) > _REJECTED_KEPT:
                    self.rejected.popitem(last=False)
                return 422, acceptance
            record = self._accepted(proposal, wire, deal_id, address, epoch)
            await self._save(record)
            return 200, record.acceptance_wire

    def _judge(self, proposal: DealProposal, client: str, address: str, epoch: int) -> Any:
        """The policy's refusal, then the reservation caps' (``None``: accept)."""
        held_now = self.reservations()
        held = proposal.piece_cid in self.pieces
        pending = sum(1 for d in held_now if d.client == client)
        refusal = judge(proposal, self.terms, epoch, self.free_bytes, held, pending)
        if refusal is None and not held:
            refusal = check_reservation(self.limits, held_now, client, address, proposal.piece_size)
        return refusal

    def _accepted(
        self, proposal: DealProposal, wire: Any, deal_id: str, address: str, epoch: int
    ) -> DealRecord:
        held = proposal.piece_cid in self.pieces
        upload_id = "" if held else str(uuid.uuid4())
        reason = "piece already held" if held else ""
        url = f"/pdp/piece/upload/{upload_id}" if upload_id else ""
        return DealRecord(
            deal_id=deal_id,
            state=DealState.PROPOSED,
            proposal=proposal,
            proposal_wire=dict(wire),
            acceptance_wire=self._acceptance(proposal, deal_id, True, reason, url, epoch),
            upload_id=upload_id,
            accepted_epoch=epoch,
            updated_epoch=epoch,
            reserved_until=self.clock() + self.limits.ttl,
            client_address=address,
        ).advance(DealEvent.ACCEPT_HELD if held else DealEvent.ACCEPT, epoch, reason)

    def _acceptance(
        self, p: DealProposal, deal_id: str, accepted: bool, reason: str, url: str, epoch: int
    ) -> dict[str, Any]:
        return DealAcceptance(
            deal_id=deal_id,
            piece_cid=p.piece_cid,
            client=p.client,
            provider=self.provider,
            accepted=accepted,
            reason=reason,
            upload_url=url,
            epoch=epoch,
        ).sign(self.key)

    def deal_json(self, deal_id: str) -> dict[str, Any]:
        record = self.deals.get(deal_id)
        if record is not None:
            data = record.to_json()
            del data["version"], data["client_address"]  # an address is not the public's
            return data
        rejection = self.rejected.get(deal_id)
        if rejection is None:
            raise ClientError(404, "not_found", f"no deal {deal_id[:64]!r}")
        p = rejection.proposal
        return {
            "deal_id": deal_id,
            "state": DealState.REJECTED.value,
            "reason": rejection.reason,
            "piece_cid": p.piece_cid,
            "piece_size": p.piece_size,
            "client": p.client,
            "provider": p.provider,
            "acceptance": dict(rejection.acceptance),
        }

    def _own_deal(self, deal_id: str, client: str) -> DealRecord:
        record = self.deals.get(deal_id)
        if record is None:
            raise self.refuse(ClientError(404, "not_found", f"no deal {deal_id[:64]!r}"))
        if record.client != client:
            raise self.refuse(
                ClientError(403, "not_your_deal", "only the deal's client may do this")
            )
        return record

    async def voucher(self, deal_id: str, wire: Any, client: str) -> dict[str, Any]:
        self._own_deal(deal_id, client)
        try:
            voucher, signer = Voucher.open(wire)
        except InputError as exc:
            raise self.refuse(ClientError(400, "bad_request", f"voucher: {exc}")) from None
        if format_gateway_public(signer) != client:
            raise self.refuse(
                ClientError(403, "not_your_deal", "voucher not signed by the deal's client")
            )
        async with self._lock:
            record = self.deals[deal_id]
            try:
                updated, earned = apply_voucher(record, voucher, self.epoch())
            except InputError as exc:
                raise self.refuse(ClientError(409, "bad_voucher", exc.reason)) from None
            await self._save(updated)
        return {
            "deal_id": deal_id,
            "lane": voucher.lane,
            "nonce": voucher.nonce,
            "amount": str(voucher.amount),
            "earned": str(earned),
            "paid_total": str(updated.paid_total),
        }

    # status ---------------------------------------------------------------------------------

    def earnings(self) -> dict[str, Any]:
        clients: dict[str, dict[str, int]] = {}
        for record in self.deals.values():
            entry = clients.setdefault(record.client, {"vouchers": 0, "total": 0})
            entry["vouchers"] += sum(lane.vouchers for lane in record.lanes.values())
            entry["total"] += record.paid_total
        paying = {c: e for c, e in clients.items() if e["vouchers"]}
        return {
            "total": str(sum(e["total"] for e in paying.values())),
            "vouchers": sum(e["vouchers"] for e in paying.values()),
            "clients": {
                c: {"vouchers": e["vouchers"], "total": str(e["total"])}
                for c, e in sorted(paying.items())
            },
        }

    def deal_counts(self) -> dict[str, int]:
        counts = Counter(record.state.value for record in self.deals.values())
        counts[DealState.REJECTED.value] = len(self.rejected)
        return {
            state.value: counts.get(state.value, 0)
            for state in DealState
            if state is not DealState.PROPOSED
        }

    def uptime(self) -> float:
        return self.monotonic() - self.started
