"""Deals over time, a mixin of ``NodeService``: recovery after a restart and the garbage
collector (failed uploads, lapsed reservations, ended and unpaid deals, unheld pieces).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from gateway.node.deals import LIVE, DealEvent, DealRecord, DealState
from gateway.node.prooftree import ProofTrees
from gateway.node.reservations import ReservationLimits, payment_lapsed
from gateway.node.store import PieceStore
from gateway.piece.commp import PieceInfo

__all__ = ["LifecycleOps"]

log = logging.getLogger("gateway.node.service")
# A failed deal never held data; its record is kept a day for the client to read, then deleted,
# or lapsed reservations (one proposal each, keys are free) would pile up on disk for ever.
FAILED_KEPT_EPOCHS = 2880


class LifecycleOps:
    store: PieceStore
    trees: ProofTrees
    pieces: dict[str, PieceInfo]
    deals: dict[str, DealRecord]
    limits: ReservationLimits
    _lock: asyncio.Lock

    def epoch(self) -> int:
        raise NotImplementedError

    def reserving(self, record: DealRecord) -> bool:
        raise NotImplementedError

    async def _save(self, record: DealRecord) -> None:
        raise NotImplementedError

    async def _activate(self, cid: str) -> None:
        raise NotImplementedError

    def dataset_claims(self) -> set[str]:
        raise NotImplementedError

    async def forget_parked(self, cid: str) -> None:
        raise NotImplementedError

    async def collect_unclaimed(self) -> dict[str, int]:
        raise NotImplementedError

    async def recover(self) -> None:
        """After a restart: deals whose piece arrived just before a crash become active."""
        async with self._lock:
            for cid in list(self.pieces):
                await self._activate(cid)
        await self.collect_garbage()

    async def _lapse_reservations(self, epoch: int) -> int:
        """Fail accepted deals whose reservation lapsed or whose upload deadline passed."""
        failed = 0
        for record in list(self.deals.values()):
            if record.state is not DealState.ACCEPTED:
                continue
            if epoch >= record.proposal.start_epoch:
                reason = "piece not uploaded by start_epoch"
            elif not self.reserving(record):
                reason = "reservation lapsed: no upload within reservation_ttl, and not paid"
            else:
                continue
            await self._save(record.advance(DealEvent.DEADLINE, epoch, reason))
            failed += 1
        return failed

    async def _end_deals(self, epoch: int) -> Counter[str]:
        changed: Counter[str] = Counter()
        for record in list(self.deals.values()):
            if record.state is not DealState.ACTIVE:
                continue
            if epoch >= record.proposal.end_epoch:
                await self._save(record.advance(DealEvent.END, epoch, "end_epoch passed"))
                changed["expired"] += 1
            elif payment_lapsed(record, epoch, self.limits.grace_epochs):
                reason = "payment lapsed: vouchers lag the price by more than payment_grace"
                await self._save(record.advance(DealEvent.UNPAID, epoch, reason))
                changed["unpaid"] += 1
        return changed

    async def _forget_failed(self, epoch: int) -> int:
        old = [
            r
            for r in self.deals.values()
            if r.state is DealState.FAILED and epoch - r.updated_epoch >= FAILED_KEPT_EPOCHS
        ]
        for record in old:
            await asyncio.to_thread(self.store.delete_deal, record.deal_id)
            del self.deals[record.deal_id]
        return len(old)

    async def collect_garbage(self) -> dict[str, int]:
        """Fail overdue uploads, end expired or unpaid deals, delete pieces no live deal or data
        set holds, and uploads nobody claimed within ``unclaimed_keep``."""
        async with self._lock:
            epoch = self.epoch()
            changed = await self._end_deals(epoch)
            changed["failed"] += await self._lapse_reservations(epoch)
            changed["forgotten"] += await self._forget_failed(epoch)
            changed.update(await self.collect_unclaimed())
            live = {d.piece_cid for d in self.deals.values() if d.state in LIVE}
            live |= self.dataset_claims()
            for record in list(self.deals.values()):
                if record.state is not DealState.EXPIRED:
                    continue
                cid = record.piece_cid
                if cid in self.pieces and cid not in live:
                    await asyncio.to_thread(self.store.delete_piece, cid)
                    self.trees.forget(cid)
                    del self.pieces[cid]
                    await self.forget_parked(cid)
                    changed["pieces_deleted"] += 1
                await self._save(record.advance(DealEvent.GC, epoch))
                changed["removed"] += 1
        changed = +changed  # drop zero counts
        if changed:
            log.info("gc at epoch %d: %s", epoch, dict(changed))
        return dict(changed)
