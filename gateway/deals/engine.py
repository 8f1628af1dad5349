"""Driving placements over the network (async): propose, upload, prove, pay, renew, rebuild.

The ``Engine`` owns no state: it reads the ``Book`` and changes it only through ``record``
(ledger append + apply), always *before* the network action the new state allows ("checkpoint,
then act"). Each method handles one placement and never raises for a node's misbehaviour: a
``NodeError`` becomes a recorded failure that lowers the node's reputation.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nacl.signing import SigningKey

from gateway.deals.book import Book
from gateway.deals.budget import deal_price_per_epoch, voucher_due
from gateway.deals.client import NodeClient, Reply
from gateway.deals.local import LocalObjects
from gateway.deals.placement import IN_FLIGHT, Placement, State
from gateway.deals.proving import ProofResult, check_prove_response, pick_leaves
from gateway.deals.repair import piece_cid_of, rebuild_fragments
from gateway.deals.throttle import backoff
from gateway.errors import GatewayError, InputError, NodeError
from gateway.keys import format_gateway_public, parse_gateway_public
from gateway.market.epoch import epoch_at
from gateway.market.messages import Ask, DealAcceptance, DealProposal, Voucher
from gateway.piece.cid import piece_info_from_v2
from gateway.seal.signed import SignedHeader
from gateway.seal.store import Vault

__all__ = ["START_DELAY_EPOCHS", "Engine", "EngineSettings"]

log = logging.getLogger(__name__)

START_DELAY_EPOCHS = 4
"""A deal starts this many epochs ahead: the node's upload deadline (API.md)."""
_RANGE_FALLBACK_CODES = (404, 405, 501)
_WHOLE_PIECE_LIMIT = 4 << 20


@dataclass(frozen=True, slots=True)
class EngineSettings:
    duration_epochs: int
    challenges: int
    max_attempts: int = 5
    repair_after: int = 2  # consecutive failed proofs before a placement is repaired


class Engine:
    def __init__(
        self,
        book: Book,
        record: Callable[[dict[str, Any]], None],
        client: NodeClient,
        local: LocalObjects,
        vault: Vault | None,
        identity: SigningKey,
        settings: EngineSettings,
        rng: random.Random,
        clock: Callable[[], float] = time.time,
        retired: Sequence[SigningKey] = (),
    ) -> None:
        self.book = book
        self.record = record
        self.client = client
        self.local = local
        self.vault = vault
        self.identity = identity
        self.client_key = format_gateway_public(identity.verify_key)
        # Deals made before an identity rotation are paid with the key that made them.
        self.keys = {format_gateway_public(k.verify_key): k for k in (*retired, identity)}
        self.settings = settings
        self.rng = rng
        self.clock = clock
        self.range_only: set[str] = set()  # providers without /market/v1/prove (Curio-like)

    def deal_key(self, p: Placement) -> SigningKey:
        """The client key of ``p``'s current deal (its signed proposal names it)."""
        proposal = self.book.proposals.get(p.pid)
        client = proposal.get("body", {}).get("client") if isinstance(proposal, dict) else None
        return self.keys.get(str(client), self.identity)

    def now_epoch(self) -> int:
        return epoch_at(self.clock())

    # -- planning -------------------------------------------------------------------------------

    def proposal(self, key: str, piece_cid: str, ask: Ask, start: int) -> DealProposal:
        info = piece_info_from_v2(piece_cid)
        return DealProposal(
            piece_cid=piece_cid,
            piece_size=info.padded_size,
            verified_deal=False,
            client=self.client_key,
            provider=ask.provider,
            label=key,
            start_epoch=start,
            end_epoch=start + self.settings.duration_epochs,
            storage_price_per_epoch=deal_price_per_epoch(ask.price_per_gib_epoch, info.padded_size),
            provider_collateral=0,
            client_collateral=0,
            nonce=secrets.token_hex(8),
        )

    def plan(self, key: str, piece_cid: str, ask: Ask) -> Placement:
        """Record a planned placement with its signed proposal (budget checked by the caller)."""
        proposal = self.proposal(key, piece_cid, ask, self.now_epoch() + START_DELAY_EPOCHS)
        wire = proposal.sign(self.identity)
        placement = Placement(
            pid=secrets.token_hex(8),
            key=key,
            piece_cid=piece_cid,
            provider=ask.provider,
            url=ask.url.rstrip("/"),
            deal_id=proposal.deal_id(),
            price_per_epoch=proposal.storage_price_per_epoch,
            start_epoch=proposal.start_epoch,
            end_epoch=proposal.end_epoch,
        )
        fields = _fields(placement)
        self.record({"t": "plan", "placement": fields, "proposal": wire})
        return placement

    def move(self, p: Placement, state: State, reason: str = "", **extra: Any) -> Placement:
        self.record({"t": "move", "pid": p.pid, "state": str(state), "reason": reason, **extra})
        return self.book.placements[p.pid]

    # -- driving one placement ------------------------------------------------------------------

    async def drive(self, pid: str) -> None:
        """Take a placement from wherever it is to uploaded (then prove it once)."""
        p = self.book.placements[pid]
        while p.state in IN_FLIGHT:
            if p.state == State.PLANNED:
                p = self.move(p, State.PROPOSED)
            elif p.state == State.PROPOSED:
                p = await self._propose(p)
            else:
                p = await self._upload(p)
            if p.state in IN_FLIGHT and p.attempts >= self.settings.max_attempts:
                p = self.move(p, State.FAILED, f"gave up after {p.attempts} attempts: {p.reason}")
        if p.state == State.UPLOADED:
            await self.prove(p.pid)

    async def _retry(self, p: Placement, reason: str) -> Placement:
        self.record({"t": "upload", "pid": p.pid, "ok": False, "reason": reason})
        p = self.book.placements[p.pid]
        await asyncio.sleep(backoff(p.attempts, self.rng))
        return p

    async def _propose(self, p: Placement) -> Placement:
        wire = self.book.proposals.get(p.pid)
        if wire is None:
            return self.move(p, State.FAILED, "proposal lost (ledger compacted mid-flight)")
        try:
            reply = await self.client.propose(p.url, wire)
        except NodeError as exc:
            return await self._retry(p, exc.reason)
        if reply.status not in (200, 422):
            return await self._retry(p, f"proposal: HTTP {reply.status} {reply.code()}")
        try:
            acceptance, _ = DealAcceptance.open(reply.json(), parse_gateway_public(p.provider))
        except (InputError, GatewayError) as exc:
            return await self._retry(p, f"bad acceptance: {exc}")
        ok = (
            acceptance.deal_id == p.deal_id
            and acceptance.piece_cid == p.piece_cid
            and acceptance.client == self.client_key
            and acceptance.provider == p.provider
        )
        if not ok:
            return await self._retry(p, "acceptance does not match the proposal")
        if not acceptance.accepted or reply.status == 422:
            return self.move(p, State.FAILED, f"rejected: {acceptance.reason}")
        return self.move(
            p, State.ACCEPTED, upload_url=acceptance.upload_url, acceptance=reply.json()
        )

    async def object_bytes(self, p: Placement) -> bytes | None:
        kind, _, rest = p.key.partition("/")
        if kind == "frag":
            seq, index = (int(x) for x in rest.split("/"))
            data = await asyncio.to_thread(self.local.fragment, seq, index, p.piece_cid)
            if data is None:
                data = await self.rebuild(seq, index)
            return data
        if kind == "dict":
            seqs = [
                s
                for s, b in self.book.batches.items()
                if b.dictionary == rest and s not in self.book.evicted
            ]
            data = await asyncio.to_thread(self.local.dictionary, seqs, rest, p.piece_cid)
            return data if data is not None else await self.fetch_copy(p)
        if kind == "ledger":
            return await asyncio.to_thread(self.local.snapshot, int(rest), p.piece_cid)
        return None

    async def _upload(self, p: Placement) -> Placement:
        if not p.upload_url:  # the node already held the piece when it accepted
            try:
                held = await self.client.holds(p.url, p.piece_cid)
            except NodeError as exc:
                return await self._retry(p, exc.reason)
            if held:
                return self.move(p, State.UPLOADED, "already held")
            return self.move(p, State.FAILED, "accepted as held, but the node does not have it")
        data = await self.object_bytes(p)
        if data is None:
            return self.move(p, State.FAILED, "no local or rebuildable copy to upload")
        await asyncio.to_thread(self.local.ensure_layer, p.piece_cid, data)
        try:
            reply = await self.client.upload(p.url, p.upload_url, data)
        except NodeError as exc:
            return await self._retry(p, exc.reason)
        if reply.status in (200, 201, 204):
            self.record({"t": "upload", "pid": p.pid, "ok": True})
            return self.move(p, State.UPLOADED)
        if reply.status == 409:
            try:
                if await self.client.holds(p.url, p.piece_cid):
                    return self.move(p, State.UPLOADED, "already held")
            except NodeError as exc:
                return await self._retry(p, exc.reason)
            return await self._retry(p, f"upload: 409 {reply.code()}")
        if reply.status in (404, 403, 400, 413, 507):
            reason = f"upload refused: HTTP {reply.status} {reply.code()}"
            self.record({"t": "upload", "pid": p.pid, "ok": False, "reason": reason})
            return self.move(self.book.placements[p.pid], State.FAILED, reason)
        return await self._retry(p, f"upload: HTTP {reply.status} {reply.code()}")

    # -- fetching and rebuilding ------------------------------------------------------------------

    async def fetch(self, p: Placement) -> bytes | None:
        """The piece from ``p``'s node, if it returns exactly the right bytes."""
        limit = piece_info_from_v2(p.piece_cid).payload_size
        try:
            data = await self.client.piece(p.url, p.piece_cid, limit)
        except NodeError:
            return None
        ok = await asyncio.to_thread(piece_cid_of, data)
        return data if ok == p.piece_cid else None

    async def fetch_copy(self, p: Placement) -> bytes | None:
        for other in self.book.of_key(p.key):
            if other.pid != p.pid and other.held:
                data = await self.fetch(other)
                if data is not None:
                    await asyncio.to_thread(self.local.stage, p.piece_cid, data)
                    return data
        return None

    async def rebuild(self, seq: int, index: int) -> bytes | None:
        """Fragment ``index`` of batch ``seq`` from any k others held by nodes (or locally)."""
        if self.vault is None:
            return None
        header = SignedHeader.from_block(self.vault.header_block(seq), seq).header
        found: dict[int, bytes] = dict(await asyncio.to_thread(self.vault.fragments, seq))
        found.pop(index, None)
        for other in self.book.batch_placements(seq):
            if len(found) >= header.erasure.k:
                break
            other_index = int(other.key.rsplit("/", 1)[1])
            if other.held and other_index not in found and other_index != index:
                data = await self.fetch(other)
                if data is not None:
                    found[other_index] = data
        try:
            rebuilt = await asyncio.to_thread(rebuild_fragments, header, found, [index])
        except GatewayError as exc:
            log.warning("cannot rebuild fragment %d of batch %d: %s", index, seq, exc)
            return None
        data = rebuilt[index]
        await asyncio.to_thread(self.local.stage, header.fragments[index], data)
        return data

    # -- proving and paying -----------------------------------------------------------------------

    async def _prove_range(self, p: Placement) -> ProofResult:
        info = piece_info_from_v2(p.piece_cid)
        layer = await asyncio.to_thread(self.local.layer, p.piece_cid)
        if layer is None:
            if info.payload_size > _WHOLE_PIECE_LIMIT:
                return ProofResult(False, "no cached layer for a range proof", "range")
            data = await self.fetch(p)
            ok = data is not None
            return ProofResult(ok, "" if ok else "whole-piece read failed", "range")
        for challenge in layer.challenges(info, self.settings.challenges, self.rng):
            span = (challenge.start, challenge.end)
            try:
                data = await self.client.piece(p.url, p.piece_cid, layer.span, span)
            except NodeError as exc:
                return ProofResult(False, exc.reason, "range")
            problem = await asyncio.to_thread(layer.check, challenge, data)
            if problem is not None:
                return ProofResult(False, problem, "range")
        return ProofResult(True, "", "range")

    async def _prove_once(self, p: Placement) -> ProofResult:
        if p.provider in self.range_only:
            return await self._prove_range(p)
        info = piece_info_from_v2(p.piece_cid)
        leaves = pick_leaves(1 << info.height, self.settings.challenges, self.rng)
        try:
            reply: Reply = await self.client.prove(p.url, p.piece_cid, leaves)
        except NodeError as exc:
            return ProofResult(False, exc.reason)
        if reply.status == 200:
            return await asyncio.to_thread(check_prove_response, p.piece_cid, leaves, reply.json())
        if reply.status in _RANGE_FALLBACK_CODES and reply.code() != "not_found":
            self.range_only.add(p.provider)  # serves pieces only: prove by Range reads
            return await self._prove_range(p)
        return ProofResult(False, f"prove: HTTP {reply.status} {reply.code()}")

    async def prove(self, pid: str) -> ProofResult:
        p = self.book.placements[pid]
        if not p.held:
            return ProofResult(False, "not held")
        result = await self._prove_once(p)
        p = self.book.placements[pid]
        if not p.held:  # changed while we were waiting
            return result
        self.record(
            {
                "t": "proof",
                "pid": pid,
                "ok": result.ok,
                "reason": result.reason,
                "mode": result.mode,
                "at": int(self.clock()),
            }
        )
        p = self.book.placements[pid]
        if result.ok:
            await self.pay(p)
        elif p.consecutive_failures >= self.settings.repair_after:
            self.move(
                p, State.REPAIRING, f"{p.consecutive_failures} proofs failed: {result.reason}"
            )
        return result

    async def pay(self, p: Placement) -> None:
        """Send a cumulative voucher for the proven period, if anything new is due."""
        due = voucher_due(p.price_per_epoch, p.start_epoch, p.end_epoch, self.now_epoch())
        if due <= p.paid or p.state != State.PROVEN:
            return
        voucher = Voucher(deal_id=p.deal_id, lane=0, nonce=p.voucher_nonce + 1, amount=due)
        key = self.deal_key(p)
        wire = voucher.sign(key)
        self.record(
            {
                "t": "voucher",
                "pid": p.pid,
                "deal_id": p.deal_id,
                "nonce": voucher.nonce,
                "amount": str(due),
                "voucher": wire,
            }
        )
        try:
            reply = await self.client.voucher(p.url, p.deal_id, wire, key)
            if reply.status != 200:
                log.info("voucher for deal %s: HTTP %d %s", p.deal_id, reply.status, reply.code())
        except NodeError as exc:  # cumulative: the next voucher covers this one
            log.info("voucher for deal %s not delivered: %s", p.deal_id, exc.reason)

    async def renew(self, p: Placement, ask: Ask) -> bool:
        """A new deal for a proven placement's piece on the same node, before the old one ends."""
        start = max(self.now_epoch() + START_DELAY_EPOCHS, p.start_epoch + 1)
        proposal = self.proposal(p.key, p.piece_cid, ask, start)
        wire = proposal.sign(self.identity)
        self.record(
            {
                "t": "proposal",
                "pid": p.pid,
                "deal_id": proposal.deal_id(),
                "proposal": wire,
                "renewal": True,
            }
        )
        try:
            reply = await self.client.propose(p.url, wire)
            acceptance, _ = DealAcceptance.open(reply.json(), parse_gateway_public(p.provider))
        except (NodeError, InputError) as exc:
            log.info("renewal of %s on %s failed: %s", p.key, p.url, exc)
            return False
        if not acceptance.accepted or acceptance.deal_id != proposal.deal_id():
            return False
        self.record(
            {
                "t": "renewed",
                "pid": p.pid,
                "deal_id": proposal.deal_id(),
                "price_per_epoch": str(proposal.storage_price_per_epoch),
                "start_epoch": proposal.start_epoch,
                "end_epoch": proposal.end_epoch,
                "acceptance": reply.json(),
            }
        )
        return True


def _fields(p: Placement) -> dict[str, Any]:
    fields = asdict(p)
    fields["state"] = str(p.state)
    return fields
