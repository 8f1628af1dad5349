"""The storage book (pure): the state rebuilt from ledger events, and the questions asked of it.

The service writes an event to the ``EventLog`` and then applies it here (event sourcing), so a
restart replays the log into exactly the state it had. Events (``"t"``):

    batch     {seq, k, n, fragments: [piece CID v2], dict, header_cid}   a sealed batch to place
    object    {key, piece, replicas}           a dictionary object or ledger snapshot to place
    plan      {placement: {...}, proposal}    node chosen, deal signed (state planned)
    move      {pid, state, reason, ...fields}  a state transition (table in ``placement``)
    renewed   {pid, deal_id, price_per_epoch, start_epoch, end_epoch, proposal, acceptance}
    proof     {pid, ok, reason, mode}          one proof round's result for one placement
    upload    {pid, ok, reason}                an upload attempt's result (reputation)
    answer    {provider, at}                   a low-reputation node answered again (reputation)
    voucher   {pid, deal_id, nonce, amount, voucher}   a signed cumulative payment
    evicted   {seq}                            local fragments of a batch deleted
    snapshot  {n, piece, size, batches, last_seq}      a ledger snapshot made (object ledger/<n>)
    head      {n, piece}                       that snapshot is on the network: the ledger head

Object keys: ``frag/<seq>/<index>`` (one copy each, on distinct nodes per batch), ``dict/<id>``
and ``ledger/<n>`` (``replicas`` copies on distinct nodes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.deals.budget import BudgetState
from gateway.deals.placement import Placement, State
from gateway.deals.reputation import NodeRecord

__all__ = ["BatchEntry", "Book", "Need", "fragment_key"]


_DEAL_STATE = {
    State.PLANNED: "proposed",
    State.PROPOSED: "proposed",
    State.ACCEPTED: "accepted",
    State.UPLOADED: "active",
    State.PROVEN: "active",
    State.FAILED: "dropped",
    State.REPAIRING: "dropped",
    State.EXPIRED: "ended",
}


def fragment_key(seq: int, index: int) -> str:
    return f"frag/{seq}/{index}"


@dataclass(frozen=True, slots=True)
class BatchEntry:
    seq: int
    k: int
    n: int
    fragments: tuple[str, ...]
    dictionary: str | None
    header_cid: str


@dataclass(frozen=True, slots=True)
class Need:
    """An object that needs ``missing`` more copies, not on the ``exclude`` providers."""

    key: str
    piece_cid: str
    missing: int
    exclude: frozenset[str]
    seq: int | None  # the batch of a fragment


@dataclass
class Book:
    allow_same_node: bool = False
    batches: dict[int, BatchEntry] = field(default_factory=dict)
    objects: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (piece, replicas)
    placements: dict[str, Placement] = field(default_factory=dict)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    evicted: set[int] = field(default_factory=set)
    spent: int = 0
    repairs: int = 0
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)
    head: dict[str, Any] | None = None
    deals: dict[str, dict[str, Any]] = field(default_factory=dict)  # deal id -> summary
    proposals: dict[str, dict[str, Any]] = field(default_factory=dict)  # pid -> signed proposal

    # -- applying events ---------------------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> None:
        handler = getattr(self, "_on_" + event["t"], None)
        if handler is None:
            return  # an event from a newer version: ignored, kept in the log
        handler(event)

    def replay(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.apply(event)

    def _on_batch(self, e: dict[str, Any]) -> None:
        entry = BatchEntry(
            e["seq"], e["k"], e["n"], tuple(e["fragments"]), e.get("dict"), e.get("header_cid", "")
        )
        self.batches[entry.seq] = entry
        for index, piece in enumerate(entry.fragments):
            self.objects[fragment_key(entry.seq, index)] = (piece, 1)

    def _on_object(self, e: dict[str, Any]) -> None:
        self.objects[e["key"]] = (e["piece"], int(e["replicas"]))

    def _on_plan(self, e: dict[str, Any]) -> None:
        fields = dict(e["placement"])
        fields["state"] = State(fields.get("state", State.PLANNED))
        placement = Placement(**fields)
        self.placements[placement.pid] = placement
        if "proposal" in e:
            self.proposals[placement.pid] = e["proposal"]
        self._node(placement)
        self._deal(placement)

    def _on_move(self, e: dict[str, Any]) -> None:
        old = self.placements[e["pid"]]
        extra = {k: v for k, v in e.items() if k in ("upload_url", "attempts")}
        new = old.to(State(e["state"]), reason=e.get("reason", ""), **extra)
        self.placements[old.pid] = new
        if new.state == State.REPAIRING:
            self.repairs += 1
        self._deal(new)

    def _on_renewed(self, e: dict[str, Any]) -> None:
        old = self.placements[e["pid"]]
        self._deal(old, "renewed")
        new = old.to(
            State.PROVEN,
            deal_id=e["deal_id"],
            price_per_epoch=int(e["price_per_epoch"]),
            start_epoch=e["start_epoch"],
            end_epoch=e["end_epoch"],
            paid=0,
            voucher_nonce=0,
        )
        self.placements[old.pid] = new
        self._deal(new)

    def _on_proof(self, e: dict[str, Any]) -> None:
        p = self.placements[e["pid"]]
        record = self._node(p)
        if e["ok"]:
            p = p.but(proofs_passed=p.proofs_passed + 1, consecutive_failures=0)
            if p.state == State.UPLOADED:
                p = p.to(State.PROVEN)
                self._deal(p)
            self.nodes[p.provider] = record.success(proof=True)
        else:
            p = p.but(
                proofs_failed=p.proofs_failed + 1,
                consecutive_failures=p.consecutive_failures + 1,
                reason=e.get("reason", ""),
            )
            self.nodes[p.provider] = record.failure(e.get("reason", ""), proof=True)
        self.placements[p.pid] = p

    def _on_upload(self, e: dict[str, Any]) -> None:
        p = self.placements[e["pid"]]
        record = self._node(p)
        if e["ok"]:
            self.nodes[p.provider] = record.success(proof=False)
        else:
            self.nodes[p.provider] = record.failure(e.get("reason", ""), proof=False)
            self.placements[p.pid] = p.but(attempts=p.attempts + 1, reason=e.get("reason", ""))

    def _on_answer(self, e: dict[str, Any]) -> None:
        record = self.nodes.get(e["provider"])
        if record is not None:
            self.nodes[record.provider] = record.answered()

    def _on_voucher(self, e: dict[str, Any]) -> None:
        p = self.placements[e["pid"]]
        amount = int(e["amount"])
        if e["deal_id"] == p.deal_id and amount > p.paid:
            self.spent += amount - p.paid
            self.placements[p.pid] = p.but(paid=amount, voucher_nonce=int(e["nonce"]))
            deal = self.deals.get(p.deal_id)
            if deal is not None:
                deal["paid"] = amount

    def _on_evicted(self, e: dict[str, Any]) -> None:
        self.evicted.add(int(e["seq"]))

    def _on_snapshot(self, e: dict[str, Any]) -> None:
        self.snapshots[int(e["n"])] = dict(e)
        self.objects[f"ledger/{e['n']}"] = (e["piece"], int(e.get("replicas", 3)))

    def _on_head(self, e: dict[str, Any]) -> None:
        self.head = dict(e)

    def _node(self, p: Placement) -> NodeRecord:
        record = self.nodes.get(p.provider)
        if record is None:
            record = self.nodes[p.provider] = NodeRecord(p.provider, p.url)
        return record

    def _deal(self, p: Placement, state: str | None = None) -> None:
        if not p.deal_id:
            return
        state = state or _DEAL_STATE[p.state]
        self.deals[p.deal_id] = {
            "deal_id": p.deal_id,
            "pid": p.pid,
            "object": p.key,
            "provider": p.provider,
            "state": state,
            "price_per_epoch": p.price_per_epoch,
            "start_epoch": p.start_epoch,
            "end_epoch": p.end_epoch,
            "paid": p.paid,
        }

    # -- questions ---------------------------------------------------------------------------

    def of_key(self, key: str) -> list[Placement]:
        return [p for p in self.placements.values() if p.key == key]

    def batch_placements(self, seq: int) -> list[Placement]:
        prefix = f"frag/{seq}/"
        return [p for p in self.placements.values() if p.key.startswith(prefix)]

    def _distinct(self, placements: list[Placement]) -> int:
        """Copies counted once per index and (unless allowed) once per node."""
        indexes = {p.key for p in placements}
        if self.allow_same_node:
            return len(indexes)
        return min(len(indexes), len({p.provider for p in placements}))

    def proven_fragments(self, seq: int) -> int:
        return self._distinct([p for p in self.batch_placements(seq) if p.state == State.PROVEN])

    def held_fragments(self, seq: int) -> int:
        return self._distinct([p for p in self.batch_placements(seq) if p.held])

    def durable(self, seq: int) -> bool:
        """>= k fragments proven on distinct nodes (DESIGN section 2)."""
        entry = self.batches.get(seq)
        return entry is not None and self.proven_fragments(seq) >= entry.k

    def object_proven(self, key: str) -> int:
        return len({p.provider for p in self.of_key(key) if p.state == State.PROVEN})

    def evictable(self, seq: int) -> bool:
        """Durable, and its dictionary object (if any) proven on the network as well."""
        entry = self.batches.get(seq)
        if entry is None or seq in self.evicted or not self.durable(seq):
            return False
        if entry.dictionary is None:
            return True
        _, replicas = self.objects.get(f"dict/{entry.dictionary}", ("", 1))
        return self.object_proven(f"dict/{entry.dictionary}") >= min(2, replicas)

    def needs(self) -> Iterator[Need]:
        """Objects short of copies (only the newest ledger snapshot counts)."""
        latest = max(self.snapshots) if self.snapshots else None
        for key, (piece, replicas) in self.objects.items():
            if key.startswith("ledger/") and int(key.split("/")[1]) != latest:
                continue
            placements = self.of_key(key)
            live = [p for p in placements if p.live]
            missing = replicas - len(live)
            if missing <= 0:
                continue
            seq = int(key.split("/")[1]) if key.startswith("frag/") else None
            exclude = {p.provider for p in placements if not p.live}  # failed here before
            exclude |= {p.provider for p in live}
            if seq is not None and not self.allow_same_node:
                exclude |= {p.provider for p in self.batch_placements(seq) if p.live}
            yield Need(key, piece, missing, frozenset(exclude), seq)

    def budget(self, limit: int) -> BudgetState:
        committed = sum(p.committed for p in self.placements.values())
        return BudgetState(limit, self.spent, committed)

    def to_events(self) -> list[dict[str, Any]]:
        """The current state as events (for ``EventLog.compact``)."""
        events: list[dict[str, Any]] = []
        for entry in self.batches.values():
            events.append(
                {
                    "t": "batch",
                    "seq": entry.seq,
                    "k": entry.k,
                    "n": entry.n,
                    "fragments": list(entry.fragments),
                    "dict": entry.dictionary,
                    "header_cid": entry.header_cid,
                }
            )
        for key, (piece, replicas) in self.objects.items():
            if not key.startswith(("frag/", "ledger/")):
                events.append({"t": "object", "key": key, "piece": piece, "replicas": replicas})
        events += [dict(s, t="snapshot") for s in self.snapshots.values()]
        for p in self.placements.values():
            fields = asdict(p)
            fields["state"] = str(p.state)
            plan: dict[str, Any] = {"t": "plan", "placement": fields}
            if p.pid in self.proposals and p.state in (State.PLANNED, State.PROPOSED):
                plan["proposal"] = self.proposals[p.pid]
            events.append(plan)
        events += [{"t": "evicted", "seq": seq} for seq in sorted(self.evicted)]
        events.append(
            {
                "t": "restore_totals",
                "spent": self.spent,
                "repairs": self.repairs,
                "nodes": [asdict(n) for n in self.nodes.values()],
            }
        )
        if self.head is not None:
            events.append(dict(self.head, t="head"))
        return events

    def _on_restore_totals(self, e: dict[str, Any]) -> None:
        self.spent = int(e["spent"])
        self.repairs = int(e["repairs"])
        self.nodes = {n["provider"]: NodeRecord(**n) for n in e["nodes"]}
