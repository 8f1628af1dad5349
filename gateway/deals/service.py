"""``StorageService``: the gateway's deal, upload, proving and repair client, on its own thread.

One asyncio loop in a background thread runs:

- ``reconcile`` (every second, and at once after ``notify_sealed``): register newly sealed
  batches and their dictionary objects, plan placements for every object short of copies
  (selection + budget), resume in-flight placements after a restart, retire repaired and expired
  placements, renew deals near their end, evict batches that are durable, and store a new ledger
  snapshot when what it would say changed (then move ``ledger_head`` once it is on the network);
- proof rounds every ``[proving] interval`` (APScheduler ``AsyncIOScheduler``): each held
  placement is challenged; passes pay a voucher, failures lower the node's reputation and after
  ``repair_after`` in a row the placement is repaired (re-placed elsewhere, rebuilt if needed);
- discovery every few seconds: asks from ``[storage] nodes`` and from the fleet broker.

Every decision is written to the ledger (``EventLog``) before it is acted on; ``stats()`` is safe
from any thread. Time and randomness are injectable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from nacl.signing import SigningKey, VerifyKey

from gateway.config import Config
from gateway.deals.backend import Backend, backends_hold, load_object, offer_batch
from gateway.deals.book import Book, Need
from gateway.deals.budget import deal_price_per_epoch
from gateway.deals.client import NodeClient
from gateway.deals.discovery import AskBook, same_url
from gateway.deals.engine import Engine, EngineSettings
from gateway.deals.eventlog import EventLog
from gateway.deals.fleet import AskSubscriber
from gateway.deals.local import LocalObjects
from gateway.deals.placement import IN_FLIGHT, Placement, State
from gateway.deals.repair import piece_cid_of
from gateway.deals.reputation import SecondChances
from gateway.deals.selection import Candidate, Requirement, choose_node
from gateway.deals.snapshot import BatchRecord, LedgerSnapshot, encode_snapshot
from gateway.deals.throttle import TokenBucket
from gateway.errors import GatewayError, NodeError
from gateway.keys import format_gateway_public, load_identity
from gateway.market.epoch import epoch_at, epochs_for
from gateway.piece.cid import piece_info_from_v2
from gateway.seal.signed import SignedHeader
from gateway.seal.store import Vault
from gateway.supervise import SupervisedThread, spawn

__all__ = ["StorageService"]

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 24
SNAPSHOT_GAP = 1.0  # seconds between ledger snapshots at most


class StorageService:
    def __init__(
        self,
        config: Config,
        vault: Vault | None,
        identity: SigningKey,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        backends: Sequence[Backend] = (),
    ) -> None:
        self.config = config
        self.backends = list(backends)  # [storage] backends beside the market (gateway/foc)
        self.storage = config.storage
        self.vault = vault
        self.identity = identity
        self.clock = clock
        self.rng = rng or random.Random()
        self.events = EventLog(config.state_dir / "ledger")
        self.book = Book(allow_same_node=self.storage.allow_same_node)
        self.book.replay(self.events.events)
        self.local = LocalObjects(config.state_dir, vault)
        self.asks = AskBook()
        self.static_urls = [u.rstrip("/") for u in self.storage.nodes]
        self.unreachable: dict[str, str] = {}
        self._second_chances = SecondChances()
        self.duration_epochs = epochs_for(self.storage.deal_duration)
        self.last_error: str | None = None
        self.budget_blocked: str | None = None
        self.nodes_blocked: str | None = None
        self._lock = threading.RLock()
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = threading.Event()
        self._thread: SupervisedThread | None = None
        self._last_snapshot = 0.0
        self._renew_after: dict[str, float] = {}
        self._subscriber: AskSubscriber | None = None
        self.engine: Engine | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def record(self, event: dict[str, Any]) -> None:
        """Checkpoint: append durably, then apply to the book."""
        with self._lock:
            self.events.append(event)
            self.book.apply(event)

    def start(self) -> None:
        for backend in self.backends:
            backend.start()
        for seq in sorted(set(self.book.batches) - self.book.evicted) if self.backends else ():
            offer_batch(self.backends, self.book, self.local, seq)  # idempotent after a restart
        self._thread = spawn(self._run, "storage")

    def load_object(self, key: str) -> bytes | None:
        with self._lock:
            return load_object(self.book, self.local, key)

    @property
    def thread(self) -> SupervisedThread | None:
        return self._thread

    def stop(self, timeout: float = 20.0) -> None:
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._subscriber is not None:
            self._subscriber.stop()
        for backend in self.backends:
            backend.stop()
        self.events.close()

    def wake(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)

    def notify_sealed(self, seq: int) -> None:
        """Called by the batcher (any thread) after batch ``seq`` is in the vault."""
        del seq
        self.wake()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        rate = float(self.storage.upload_rate)
        bucket = TokenBucket(rate, max(rate, 64 * 1024)) if rate else None
        client = NodeClient(self.identity, self.storage.request_timeout, bucket, self.clock)
        settings = EngineSettings(
            self.duration_epochs,
            self.config.proving.challenges,
            repair_after=self.storage.repair_after,
        )
        self.engine = Engine(
            self.book,
            self.record,
            client,
            self.local,
            self.vault,
            self.identity,
            settings,
            self.rng,
            self.clock,
            retired=_retired_keys(self.config.state_dir),
        )
        scheduler = AsyncIOScheduler(event_loop=self._loop, timezone=UTC)
        interval = self.config.proving.interval
        first = datetime.now(UTC) + timedelta(seconds=interval)
        scheduler.add_job(
            self._guard_job("proving", self.prove_round),
            "interval",
            seconds=interval,
            next_run_time=first,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.add_job(
            self._guard_job("discovery", self.discover),
            "interval",
            seconds=min(5.0, interval * 2),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        if self.config.fleet.broker:
            self._subscriber = AskSubscriber(
                self.config.fleet.broker, f"{self.config.gateway.id}-asks", self._broker_ask
            )
            self._subscriber.start()
        try:
            await self._guard("discovery", self.discover())
            scheduler.start()
            while not self._stopping.is_set():
                await self._guard("reconcile", self.reconcile())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                self._wake.clear()
        finally:
            scheduler.shutdown(wait=False)
            pending = [*self._tasks.values(), *self._background]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await client.close()

    def _guard_job(
        self, what: str, job: Callable[[], Coroutine[Any, Any, None]]
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        async def run() -> None:
            with contextlib.suppress(asyncio.CancelledError):  # shutdown: nothing to report
                await self._guard(what, job())

        return run

    async def _guard(self, what: str, work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except GatewayError as exc:
            self.last_error = f"{what}: {exc}"
            log.warning("storage %s: %s", what, exc)
        except Exception as exc:  # a bug must not stop storage; it is logged and shown
            self.last_error = f"{what}: {type(exc).__name__}: {exc}"
            log.exception("storage %s failed", what)

    def _spawn(self, pid: str, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(self._guard(f"placement {pid}", work))
        self._tasks[pid] = task
        task.add_done_callback(lambda _t: self._done(pid))

    def _done(self, pid: str) -> None:
        self._tasks.pop(pid, None)
        self.wake()

    def _background_task(self, what: str, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(self._guard(what, work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- discovery ------------------------------------------------------------------------------

    def _broker_ask(self, payload: bytes) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._offer, payload, None)

    def _offer(self, wire: Any, url: str | None) -> None:
        if self.asks.offer(wire, url) is not None:
            self.wake()

    async def _fetch_ask(self, url: str) -> None:
        assert self.engine is not None
        try:
            wire = await self.engine.client.ask(url)
        except NodeError as exc:
            self.unreachable[url] = exc.reason
            return
        self.unreachable.pop(url, None)
        self._offer(wire, url)
        self._answered(url)

    def _answered(self, url: str) -> None:
        """A node that answers again may earn a second chance (``reputation`` docstring)."""
        ask = self.asks.by_url(url)
        record = self.book.nodes.get(ask.provider) if ask is not None else None
        if record is not None and self._second_chances.answered(record):
            self.record({"t": "answer", "provider": record.provider, "at": int(self.clock())})

    async def discover(self) -> None:
        urls = {*self.static_urls, *(a.url.rstrip("/") for a in self.asks.asks.values())}
        await asyncio.gather(*(self._fetch_ask(url) for url in sorted(urls)))

    def _candidates(self) -> list[Candidate]:
        live = Counter(p.provider for p in self.book.placements.values() if p.live)
        return [
            Candidate(ask, self.book.nodes.get(ask.provider), live[ask.provider])
            for ask in self.asks.asks.values()
            if ask.url.rstrip("/") not in self.unreachable
        ]

    # -- reconcile ------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        await asyncio.to_thread(self._register_batches)
        self._retire()
        self._plan()
        self._resume()
        await self._evict()
        await self._snapshot()
        if self.events.needs_compaction() and not self._tasks:
            with self._lock:
                self.events.compact(self.book.to_events())

    def _register_batches(self) -> None:
        if self.vault is None:
            return
        for seq in self.vault.seqs():
            if seq in self.book.batches:
                continue
            try:
                signed = self.vault.header(seq)
            except GatewayError as exc:
                self.last_error = f"batch {seq}: {exc}"
                continue
            header = signed.header
            dictionary = header.compression.dictionary
            self.record(
                {
                    "t": "batch",
                    "seq": seq,
                    "k": header.erasure.k,
                    "n": header.erasure.n,
                    "fragments": list(header.fragments),
                    "dict": dictionary,
                    "header_cid": str(signed.cid()),
                }
            )
            offer_batch(self.backends, self.book, self.local, seq)
            if dictionary and f"dict/{dictionary}" not in self.book.objects:
                data = self.vault.dictionary(seq, dictionary)
                if data is not None:
                    self.record(
                        {
                            "t": "object",
                            "key": f"dict/{dictionary}",
                            "piece": piece_cid_of(data),
                            "replicas": self.storage.object_replicas,
                        }
                    )

    def _retire(self) -> None:
        """Repaired placements whose replacement is held become failed; ended deals expire;
        deals near their end are renewed."""
        assert self.engine is not None
        now = epoch_at(self.clock())
        renew_before = max(1, self.duration_epochs // 10)
        for p in list(self.book.placements.values()):
            if p.pid in self._tasks:
                continue
            if p.state == State.REPAIRING:
                if any(o.held for o in self.book.of_key(p.key) if o.pid != p.pid):
                    self.engine.move(p, State.FAILED, "replaced after repair")
            elif p.held and p.end_epoch <= now:
                self.engine.move(p, State.EXPIRED, "deal ended")
            elif p.state == State.PROVEN and p.end_epoch - now <= renew_before:
                ask = self.asks.asks.get(p.provider)
                cost = p.price_per_epoch * self.duration_epochs
                due = self._renew_after.get(p.pid, 0.0) <= self.clock()
                if due and ask is not None and self.book.budget(self.storage.budget).allows(cost):
                    self._renew_after[p.pid] = self.clock() + 60.0
                    self._spawn(p.pid, self.engine.renew(p, ask))

    def _available(self, need: Need) -> bool:
        """Whether the object's bytes can be had (locally, or rebuilt/copied from nodes)."""
        kind, _, rest = need.key.partition("/")
        if kind == "frag" and need.seq is not None:
            entry = self.book.batches[need.seq]
            return (
                need.seq not in self.book.evicted
                or self.book.held_fragments(need.seq) >= entry.k
                or self.local.staged(need.piece_cid) is not None
            )
        if kind == "dict":
            users = [s for s, b in self.book.batches.items() if b.dictionary == rest]
            return any(s not in self.book.evicted for s in users) or any(
                p.held for p in self.book.of_key(need.key)
            )
        return self.local.snapshot_path(int(rest)).exists()

    def _plan(self) -> None:
        assert self.engine is not None
        candidates = self._candidates()
        in_flight = sum(1 for p in self.book.placements.values() if p.state in IN_FLIGHT)
        now = epoch_at(self.clock())
        budget_blocked: str | None = None
        nodes_blocked: str | None = None
        chosen: dict[str, set[str]] = {}
        for need in list(self.book.needs()):
            if in_flight >= MAX_IN_FLIGHT:
                break
            if not self._available(need):
                continue
            info = piece_info_from_v2(need.piece_cid)
            requirement = Requirement(
                info.padded_size, self.duration_epochs, self.storage.max_price, now
            )
            group = f"batch/{need.seq}" if need.seq is not None else need.key
            for _ in range(need.missing):
                exclude = need.exclude | chosen.get(group, set())
                candidate = choose_node(
                    candidates, requirement, exclude, lambda _p: self.rng.random()
                )
                if candidate is None:
                    nodes_blocked = (
                        f"{need.key}: no eligible node left "
                        f"({len(candidates)} known, {len(exclude)} excluded)"
                    )
                    break
                price = deal_price_per_epoch(candidate.ask.price_per_gib_epoch, info.padded_size)
                cost = price * self.duration_epochs
                budget = self.book.budget(self.storage.budget)
                if not budget.allows(cost):
                    budget_blocked = budget.refusal(cost, f"a deal for {need.key}")
                    break
                self.engine.plan(need.key, need.piece_cid, candidate.ask)
                chosen.setdefault(group, set()).add(candidate.provider)
                candidates = [
                    Candidate(c.ask, c.record, c.placements + 1, c.reserved + info.padded_size)
                    if c.provider == candidate.provider
                    else c
                    for c in candidates
                ]
                in_flight += 1
        self.budget_blocked = budget_blocked
        self.nodes_blocked = nodes_blocked

    def _resume(self) -> None:
        assert self.engine is not None
        for p in list(self.book.placements.values()):
            if p.state in IN_FLIGHT and p.pid not in self._tasks:
                self._spawn(p.pid, self.engine.drive(p.pid))

    async def _evict(self) -> None:
        if self.vault is None:
            return
        for seq in sorted(self.book.batches):
            if seq in self.book.evicted or not self._evictable(seq):
                continue
            self.record({"t": "evicted", "seq": seq})  # checkpoint, then delete
            await asyncio.to_thread(self.vault.evict_fragments, seq)
            log.info("batch %d is durable on the network; local fragments evicted", seq)
            for piece in self.book.batches[seq].fragments:
                self.local.unstage(piece)

    def _evictable(self, seq: int) -> bool:
        """Market rule (if the market is a backend) and every other backend's rule."""
        market = "market" not in self.storage.backends or self.book.evictable(seq)
        return (
            market and seq not in self.book.evicted and backends_hold(self.backends, self.book, seq)
        )

    # -- ledger snapshots -----------------------------------------------------------------------

    def _locations(self, key: str) -> tuple[str, ...]:
        return tuple(sorted({p.url for p in self.book.of_key(key) if p.held}))

    def _snapshot_content(self) -> tuple[list[int], str] | None:
        included: list[int] = []
        for seq in sorted(self.book.batches):
            if seq != len(included):  # the chain must start at 0 with no gap
                break
            if not (seq in self.book.evicted or self.book.durable(seq)):
                break
            included.append(seq)
        if not included:
            return None
        shape: list[Any] = []
        for seq in included:
            entry = self.book.batches[seq]
            shape.append([seq, [self._locations(f"frag/{seq}/{i}") for i in range(entry.n)]])
        dicts = sorted({self.book.batches[s].dictionary or "" for s in included} - {""})
        shape.append([[d, self._locations(f"dict/{d}")] for d in dicts])
        return included, hashlib.sha256(json.dumps(shape).encode()).hexdigest()

    def _build_snapshot(self, included: list[int], n: int) -> bytes:
        assert self.vault is not None
        prev = self.book.head["piece"] if self.book.head else None
        batches = []
        dictionaries: dict[str, tuple[str, tuple[str, ...]]] = {}
        for seq in included:
            entry = self.book.batches[seq]
            fragments = tuple(
                (piece, self._locations(f"frag/{seq}/{i}"))
                for i, piece in enumerate(entry.fragments)
            )
            batches.append(
                BatchRecord(seq, self.vault.header_block(seq), fragments, entry.dictionary)
            )
            if entry.dictionary:
                piece, _ = self.book.objects[f"dict/{entry.dictionary}"]
                dictionaries[entry.dictionary] = (
                    piece,
                    self._locations(f"dict/{entry.dictionary}"),
                )
        first = SignedHeader.from_block(batches[0].header_block, included[0]).header
        gateway = format_gateway_public(VerifyKey(first.gateway))  # the genesis key for restore
        return encode_snapshot(LedgerSnapshot(gateway, n, prev, tuple(batches), dictionaries))

    async def _snapshot(self) -> None:
        if self.vault is None:
            return
        content = self._snapshot_content()
        latest = max(self.book.snapshots) if self.book.snapshots else None
        if content is not None:
            included, signature = content
            same = latest is not None and self.book.snapshots[latest].get("sig") == signature
            if not same and self.clock() - self._last_snapshot >= SNAPSHOT_GAP:
                n = (latest or 0) + 1
                data = await asyncio.to_thread(self._build_snapshot, included, n)
                piece = await asyncio.to_thread(piece_cid_of, data)
                await asyncio.to_thread(self.local.save_snapshot, n, data)
                self.record(
                    {
                        "t": "snapshot",
                        "n": n,
                        "piece": piece,
                        "size": len(data),
                        "batches": len(included),
                        "last_seq": included[-1],
                        "sig": signature,
                        "replicas": self.storage.object_replicas,
                    }
                )
                self._last_snapshot = self.clock()
                latest = n
        if latest is None or (self.book.head is not None and self.book.head["n"] == latest):
            return
        held = [p for p in self.book.of_key(f"ledger/{latest}") if p.held]
        usable = sum(1 for c in self._candidates() if c.usable)
        if len(held) >= max(1, min(2, self.storage.object_replicas, usable)):
            snap = self.book.snapshots[latest]
            self.record(
                {
                    "t": "head",
                    "n": latest,
                    "piece": snap["piece"],
                    "batches": snap["batches"],
                    "last_seq": snap["last_seq"],
                }
            )
            assert self.engine is not None
            for p in list(self.book.placements.values()):
                old = p.key.startswith("ledger/") and int(p.key.split("/")[1]) < latest
                if old and p.held and p.pid not in self._tasks:
                    self.engine.move(p, State.EXPIRED, "superseded by a newer snapshot")
            self.local.prune_snapshots(latest)

    # -- proving --------------------------------------------------------------------------------

    async def prove_round(self) -> None:
        assert self.engine is not None
        engine = self.engine
        limit = asyncio.Semaphore(16)

        async def one(p: Placement) -> None:
            async with limit:
                if p.pid not in self._tasks:
                    await engine.prove(p.pid)

        held = [p for p in self.book.placements.values() if p.held]
        await asyncio.gather(*(one(p) for p in held))
        self.wake()

    # -- status ---------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            book = self.book
            placements = list(book.placements.values())
            frags = [p for p in placements if p.key.startswith("frag/")]
            durable = sum(1 for seq in book.batches if book.durable(seq))
            redundant = sum(1 for seq, b in book.batches.items() if book.held_fragments(seq) >= b.n)
            budget = book.budget(self.storage.budget)
            nodes = []
            live = Counter(p.provider for p in placements if p.live)
            known = {a.provider: a for a in self.asks.asks.values()}
            for provider in sorted(set(known) | set(book.nodes)):
                record = book.nodes.get(provider)
                ask = known.get(provider)
                url = ask.url if ask else (record.url if record else "")
                nodes.append(
                    {
                        "provider": provider,
                        "url": url,
                        "reachable": not any(same_url(url, u) for u in self.unreachable),
                        "price_per_gib_epoch": str(ask.price_per_gib_epoch) if ask else None,
                        "free_bytes": ask.free_bytes if ask else None,
                        "reputation": round(record.reputation if record else 0.5, 3),
                        "proofs_passed": record.proofs_passed if record else 0,
                        "proofs_failed": record.proofs_failed if record else 0,
                        "uploads_ok": record.uploads_ok if record else 0,
                        "uploads_failed": record.uploads_failed if record else 0,
                        "placements": live[provider],
                        "last_error": record.last_error if record else "",
                    }
                )
            head = book.head
            blocked = self.budget_blocked
            return {
                "enabled": True,
                "nodes": nodes,
                "asks_rejected": self.asks.rejected,
                "deals": dict(Counter(d["state"] for d in book.deals.values())),
                "placements": dict(Counter(str(p.state) for p in placements)),
                "fragments_placed": sum(1 for p in frags if p.held),
                "fragments_proven": sum(1 for p in frags if p.state == State.PROVEN),
                "batches": len(book.batches),
                "batches_durable": durable,
                "batches_fully_redundant": redundant,
                "batches_evicted": len(book.evicted),
                "repairs": book.repairs,
                "fil": {
                    "spent": str(budget.spent),
                    "committed": str(budget.committed),
                    "budget": str(budget.budget),
                    "available": str(budget.available),
                },
                "budget_state": "blocked" if blocked else "ok",
                "budget_blocked": blocked,
                "placement_blocked": self.nodes_blocked,
                "ledger_head": head["piece"] if head else None,
                "ledger_head_batches": head.get("batches") if head else 0,
                "ledger_head_last_seq": head.get("last_seq") if head else None,
                "last_error": self.last_error or blocked,
                "backends": {b.name: b.stats() for b in self.backends},
            }


def _retired_keys(state_dir: Path) -> list[SigningKey]:
    """Identity keys replaced by ``rotate-key`` (their deals are still paid with them)."""
    keys = []
    for path in sorted(state_dir.glob("identity.retired-*.key")):
        try:
            keys.append(load_identity(path))
        except GatewayError as exc:
            log.warning("ignoring retired key %s: %s", path, exc)
    return keys
