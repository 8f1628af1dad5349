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
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey

from gateway.errors import InputError, KeyMaterialError
from gateway.keys import format_gateway_public
from gateway.market.epoch import epoch_at, epochs_for
from gateway.market.httpsig import ReplayCache, verify_request
from gateway.market.messages import Ask, DealAcceptance, DealProposal, Voucher
from gateway.node.config import NodeConfig
from gateway.node.deals import LIVE, DealEvent, DealRecord, DealState, apply_voucher
from gateway.node.policy import DealTerms, judge
from gateway.node.prooftree import LeafProof, ProofTrees
from gateway.node.ratelimit import RateLimiter
from gateway.node.store import PieceStore, UploadFile
from gateway.piece.cid import piece_cid_v2, piece_info_from_v2, piece_root_from_v1
from gateway.piece.commp import PieceInfo, unpadded_size

__all__ = ["ClientError", "NodeService", "provider_id_for"]

log = logging.getLogger(__name__)
Clock = Callable[[], float]
_REJECTED_KEPT = 1000
_CHUNK = 1 << 20


class ClientError(InputError):
    """A request the node refuses: HTTP ``status``, a stable ``code`` and a clear message."""

    def __init__(self, status: int, code: str, message: str, retry_after: float = 0.0) -> None:
        super().__init__("client", message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def provider_id_for(provider: str) -> str:
    return provider.removeprefix("ed25519:")[:16]


def parse_piece_v2(text: Any, field: str = "pieceCid") -> tuple[str, PieceInfo]:
    """Normalised CID text and piece info of a client-supplied piece CID v2 (400 otherwise)."""
    if not isinstance(text, str) or not text:
        raise ClientError(400, "bad_request", f"{field} must be a piece CID v2 string")
    try:
        info = piece_info_from_v2(text)
    except InputError as exc:
        raise ClientError(400, "bad_request", f"{field}: {exc.reason}") from None
    return str(piece_cid_v2(info)), info


@dataclass(frozen=True, slots=True)
class Rejection:
    acceptance: Mapping[str, Any]
    proposal: DealProposal
    reason: str


class NodeService:
    def __init__(
        self,
        config: NodeConfig,
        key: SigningKey,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
    ) -> None:
        self.config = config
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
        self.rejected: OrderedDict[str, Rejection] = OrderedDict()
        self.replay = ReplayCache()
        self.requests = RateLimiter(config.rate_requests, config.rate_burst)
        self.upload_bytes = RateLimiter(config.upload_rate, config.upload_burst)
        self.refusals: Counter[str] = Counter()
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

    # time, space, identity ------------------------------------------------------------------

    def epoch(self) -> int:
        return epoch_at(self.clock())

    @property
    def used_bytes(self) -> int:
        return sum(info.padded_size for info in self.pieces.values())

    @property
    def reserved_bytes(self) -> int:
        waiting = {
            d.piece_cid: d.proposal.piece_size
            for d in self.deals.values()
            if d.state is DealState.ACCEPTED and d.piece_cid not in self.pieces
        }
        return sum(waiting.values())

    @property
    def free_bytes(self) -> int:
        return max(0, self.config.capacity - self.used_bytes - self.reserved_bytes)

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

    @staticmethod
    def refuse(error: ClientError) -> ClientError:
        """Marks a refusal (the HTTP layer counts them by code in ``refusals``)."""
        return error

    def authenticate(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        body_digest: str | None = None,
    ) -> str:
        """The verified client key (``ed25519:<hex>``) of an RFC 9421-signed request; 401 if not."""
        try:
            key = verify_request(
                method,
                path,
                query,
                headers,
                body,
                int(self.clock()),
                self.replay,
                self.config.max_skew,
                body_digest=body_digest,
            )
        except InputError as exc:
            reason = exc.reason
            code = (
                "unsigned"
                if reason.startswith("unsigned")
                else "replayed"
                if "replayed" in reason
                else "stale"
                if reason.startswith("signature created")
                else "bad_signature"
            )
            raise self.refuse(ClientError(401, code, f"request signature: {reason}")) from None
        client = format_gateway_public(key)
        self.limit_requests(f"key:{client}")
        return client

    def limit_requests(self, who: str) -> None:
        wait = self.requests.try_take(who, self.monotonic())
        if wait > 0:
            raise self.refuse(
                ClientError(
                    429,
                    "rate_limited",
                    f"too many requests; retry in {wait:.1f} s",
                    retry_after=wait,
                )
            )

    async def _save(self, record: DealRecord) -> None:
        await asyncio.to_thread(self.store.save_deal, record)
        self.deals[record.deal_id] = record

    # deals ----------------------------------------------------------------------------------

    async def propose(self, wire: Any, client: str) -> tuple[int, Mapping[str, Any]]:
        """(HTTP status, signed acceptance) for a signed proposal from the verified ``client``."""
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
        deal_id = proposal.deal_id()
        async with self._lock:
            existing = self.deals.get(deal_id)
            if existing is not None:
                return 200, existing.acceptance_wire
            epoch = self.epoch()
            cid = proposal.piece_cid
            pending = sum(
                1
                for d in self.deals.values()
                if d.client == client and d.state is DealState.ACCEPTED
            )
            held = cid in self.pieces
            refusal = judge(proposal, self.terms, epoch, self.free_bytes, held, pending)
            if refusal is not None:
                self.refusals[refusal.code] += 1
                acceptance = self._acceptance(proposal, deal_id, False, str(refusal), "", epoch)
                self.rejected[deal_id] = Rejection(acceptance, proposal, str(refusal))
                while len(self.rejected) > _REJECTED_KEPT:
                    self.rejected.popitem(last=False)
                return 422, acceptance
            upload_id = "" if held else str(uuid.uuid4())
            reason = "piece already held" if held else ""
            record = DealRecord(
                deal_id=deal_id,
                state=DealState.PROPOSED,
                proposal=proposal,
                proposal_wire=dict(wire),
                acceptance_wire=self._acceptance(
                    proposal,
                    deal_id,
                    True,
                    reason,
                    f"/pdp/piece/upload/{upload_id}" if upload_id else "",
                    epoch,
                ),
                upload_id=upload_id,
                accepted_epoch=epoch,
                updated_epoch=epoch,
            ).advance(DealEvent.ACCEPT_HELD if held else DealEvent.ACCEPT, epoch, reason)
            await self._save(record)
            return 200, record.acceptance_wire

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
            del data["version"]
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

    # pieces ---------------------------------------------------------------------------------

    def lookup_piece(self, text: str) -> tuple[str, PieceInfo]:
        """A held piece by CID v2 (or v1); 404 when not held, 400 when not a piece CID."""
        try:
            info = piece_info_from_v2(text)
            cid = str(piece_cid_v2(info))
        except InputError:
            try:
                root = piece_root_from_v1(text)
            except InputError:
                raise ClientError(400, "bad_request", "not a piece CID (v2 or v1)") from None
            found = [(c, i) for c, i in self.pieces.items() if i.root == root]
            if not found:
                raise ClientError(404, "not_found", "piece not held") from None
            return found[0]
        if cid not in self.pieces:
            raise ClientError(404, "not_found", "piece not held")
        return cid, self.pieces[cid]

    def pdp_piece(self, text: Any, client: str) -> str | None:
        """``None`` if the piece is held, else the upload path of the client's pending deal."""
        cid, _ = parse_piece_v2(text)
        if cid in self.pieces:
            return None
        for record in self.deals.values():
            if (record.client, record.piece_cid, record.state) == (client, cid, DealState.ACCEPTED):
                return record.upload_url
        raise self.refuse(
            ClientError(
                402,
                "no_deal",
                "no accepted deal of yours for this piece; POST /market/v1/deals first",
            )
        )

    def upload_deal(self, upload_id: str) -> DealRecord:
        for record in self.deals.values():
            if record.upload_id == upload_id and upload_id:
                return record
        raise self.refuse(ClientError(404, "not_found", "no such upload"))

    def check_upload(self, record: DealRecord, client: str, length: int | None) -> int:
        """Refuse an upload before reading it; the byte limit for its body otherwise."""
        if record.client != client:
            raise self.refuse(
                ClientError(403, "not_your_deal", "uploads must be signed by the deal's client")
            )
        if record.piece_cid in self.pieces or record.state is DealState.ACTIVE:
            raise self.refuse(ClientError(409, "duplicate", "piece already held"))
        if record.state is not DealState.ACCEPTED:
            raise self.refuse(ClientError(409, "conflict", f"deal is {record.state.value}"))
        if self.epoch() >= record.proposal.start_epoch:
            raise self.refuse(ClientError(409, "conflict", "upload deadline (start_epoch) passed"))
        if record.upload_id in self.uploading:
            raise self.refuse(ClientError(409, "upload_in_progress", "this upload is running"))
        info = piece_info_from_v2(record.piece_cid)
        limit = min(info.payload_size, unpadded_size(self.config.max_piece_size))
        if length is not None and length > limit:
            raise self.refuse(
                ClientError(
                    413, "too_large", f"Content-Length {length} exceeds the piece's {limit} bytes"
                )
            )
        return limit

    async def upload(
        self,
        record: DealRecord,
        client: str,
        claimed_digest: str,
        chunks: AsyncIterator[bytes],
        limit: int,
    ) -> None:
        """Stream an upload to a temp file, verify it, and make it the deal's piece."""
        upload_id = record.upload_id
        self.uploading.add(upload_id)
        file: UploadFile | None = None
        try:
            file = await asyncio.to_thread(self.store.new_upload, upload_id)
            pending = bytearray()
            async for chunk in chunks:
                if file.size + len(pending) + len(chunk) > limit:
                    raise self.refuse(
                        ClientError(413, "too_large", f"body exceeds the piece's {limit} bytes")
                    )
                pending += chunk
                if len(pending) >= _CHUNK:
                    await self._throttle(client, len(pending))
                    await asyncio.to_thread(file.write, bytes(pending))
                    pending.clear()
            if pending:
                await self._throttle(client, len(pending))
                await asyncio.to_thread(file.write, bytes(pending))
            digest, info = await asyncio.to_thread(file.finish)
            if digest != claimed_digest:
                raise self.refuse(
                    ClientError(400, "digest_mismatch", "Content-Digest does not match the body")
                )
            cid = str(piece_cid_v2(info))
            if cid != record.piece_cid:
                raise self.refuse(
                    ClientError(
                        400,
                        "commp_mismatch",
                        f"the body's piece CID is {cid}, not {record.piece_cid}",
                    )
                )
            await self._commit(file, cid, info)
            file = None
        finally:
            self.uploading.discard(upload_id)
            if file is not None:
                await asyncio.to_thread(file.discard)

    async def _throttle(self, client: str, size: int) -> None:
        wait = self.upload_bytes.take_debt(f"key:{client}", self.monotonic(), size)
        if wait > 0:
            await asyncio.sleep(wait)

    async def _commit(self, file: UploadFile, cid: str, info: PieceInfo) -> None:
        async with self._lock:
            if cid in self.pieces:
                raise self.refuse(ClientError(409, "duplicate", "piece already held"))
            if self.used_bytes + info.padded_size > self.config.capacity:
                raise self.refuse(ClientError(507, "no_space", "the node is full"))
            await asyncio.to_thread(self.store.commit_piece, file, cid)
            self.pieces[cid] = info
            await self._activate(cid)

    async def _activate(self, cid: str) -> None:
        epoch = self.epoch()
        for record in list(self.deals.values()):
            if record.piece_cid == cid and record.state is DealState.ACCEPTED:
                await self._save(record.advance(DealEvent.UPLOADED, epoch))

    async def prove(self, text: Any, leaves: Any) -> dict[str, Any]:
        cid, info = parse_piece_v2(text)
        if not isinstance(leaves, list) or not leaves:
            raise ClientError(400, "bad_request", "leaves must be a non-empty list of integers")
        if len(leaves) > self.config.max_prove_leaves:
            raise ClientError(
                400, "bad_request", f"at most {self.config.max_prove_leaves} leaves per request"
            )
        count = 1 << info.height
        for index in leaves:
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
                raise ClientError(
                    400, "bad_request", f"leaf index {index!r} is not an integer in 0..{count - 1}"
                )
        if cid not in self.pieces:
            raise ClientError(404, "not_found", "piece not held")
        proofs: list[LeafProof] = await asyncio.to_thread(
            self.trees.prove, cid, self.store.piece_path(cid), info, leaves
        )
        return {
            "pieceCid": cid,
            "root": info.root.hex(),
            "height": info.height,
            "leaves": [
                {"index": i, "leaf": leaf.hex(), "path": [node.hex() for node in path]}
                for i, leaf, path in proofs
            ],
        }

    # lifecycle ------------------------------------------------------------------------------

    async def recover(self) -> None:
        """After a restart: deals whose piece arrived just before a crash become active."""
        async with self._lock:
            for cid in list(self.pieces):
                await self._activate(cid)
        await self.collect_garbage()

    async def collect_garbage(self) -> dict[str, int]:
        """Fail overdue uploads, expire ended deals, delete pieces no live deal holds."""
        changed: Counter[str] = Counter()
        async with self._lock:
            epoch = self.epoch()
            for record in list(self.deals.values()):
                p = record.proposal
                if record.state is DealState.ACCEPTED and epoch >= p.start_epoch:
                    await self._save(
                        record.advance(
                            DealEvent.DEADLINE, epoch, "piece not uploaded by start_epoch"
                        )
                    )
                    changed["failed"] += 1
                elif record.state is DealState.ACTIVE and epoch >= p.end_epoch:
                    await self._save(record.advance(DealEvent.END, epoch, "end_epoch passed"))
                    changed["expired"] += 1
            live = {d.piece_cid for d in self.deals.values() if d.state in LIVE}
            for record in list(self.deals.values()):
                if record.state is not DealState.EXPIRED:
                    continue
                cid = record.piece_cid
                if cid in self.pieces and cid not in live:
                    await asyncio.to_thread(self.store.delete_piece, cid)
                    self.trees.forget(cid)
                    del self.pieces[cid]
                    changed["pieces_deleted"] += 1
                await self._save(record.advance(DealEvent.GC, epoch))
                changed["removed"] += 1
        if changed:
            log.info("gc at epoch %d: %s", epoch, dict(changed))
        return dict(changed)

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
