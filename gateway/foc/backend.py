"""``FocBackend``: the FOC engine on its own thread, built from ``[chain]`` and ``[foc]``; what
the daemon hands the storage service as a ``gateway.deals.backend.Backend``.

Each round: the chain id is checked (a wrong one stops all work with a clear status: nothing is
signed for the wrong chain), providers are re-read from the registry every ``_REFRESH`` seconds,
the Filecoin Pay top-up rule runs (a fee above ``[chain] max_fee`` stops only spending on gas,
with a status), new offers are planned, and the engine takes one step. Errors never end the
thread; they are in ``stats()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.chain.journal import Journal
from gateway.chain.jsonrpc import RpcClient
from gateway.chain.networks import get_network
from gateway.chain.sending import ChainSender, FeePolicy
from gateway.config import Config
from gateway.errors import FeeAboveCap, GatewayError, WrongChainId
from gateway.foc.chainview import FocAddresses, FocChainView
from gateway.foc.curio import CurioClient
from gateway.foc.driver import step
from gateway.foc.engine import FocEngine, FocSettings
from gateway.foc.funding import top_up
from gateway.foc.registry import FocProvider, eligible, read_providers
from gateway.foc.status import provider_stats
from gateway.keys.wallet import load_wallet
from gateway.supervise import SupervisedThread, spawn

__all__ = ["FocBackend", "addresses_of", "foc_paths"]

log = logging.getLogger(__name__)
_REFRESH = 600.0


def foc_paths(state_dir: Path) -> tuple[Path, Path]:
    """(FOC journal, transaction journal) under the state directory."""
    return state_dir / "foc" / "journal.json", state_dir / "chain" / "tx-journal.json"


def addresses_of(config: Config) -> tuple[FocAddresses, int, str]:
    """Contract addresses (preset, then overrides), chain id and RPC URL of ``[chain]``."""
    chain = config.chain
    assert chain is not None
    network = get_network(chain.network)
    o, c = chain.contracts, network.contracts
    picked = {
        n: getattr(o, n) or getattr(c, n)
        for n in ("fwss", "pdp_verifier", "filecoin_pay", "service_provider_registry", "usdfc")
    }
    missing = [n for n, v in picked.items() if not v]
    if missing:
        from gateway.errors import ConfigError

        raise ConfigError(f"chain.{missing[0]}", "no address known", "set it in [chain]")
    return (
        FocAddresses(**picked),
        chain.chain_id or network.chain_id,
        chain.rpc_url or network.rpc_url,
    )


class FocBackend:
    name = "foc"

    def __init__(self, config: Config, load: Callable[[str], bytes | None]) -> None:
        assert config.chain is not None and config.foc is not None
        self.config, chain, foc = config, config.chain, config.foc
        addresses, self.chain_id, url = addresses_of(config)
        self.rpc = RpcClient(url, timeout=chain.rpc_timeout)
        wallet = load_wallet(chain.wallet)
        foc_journal, tx_journal = foc_paths(config.state_dir)
        fees = FeePolicy(
            chain.max_fee, chain.max_priority_fee, chain.confirmations, chain.receipt_timeout
        )
        self.sender = ChainSender(self.rpc, wallet, self.chain_id, Journal(tx_journal), fees)
        settings = FocSettings(
            foc.copies,
            foc.budget,
            config.storage.deal_duration,
            foc.keep_window,
            foc.repair_after,
            foc.with_cdn,
            foc.upload_flow == "streaming",
        )
        self.engine = FocEngine(
            Journal(foc_journal),
            FocChainView(self.rpc, addresses),
            wallet,
            self.chain_id,
            self._client,
            load,
            settings,
        )
        self.stopped = ""  # why spending stopped ("" = it did not)
        self.last_error = ""
        self._offers: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: SupervisedThread | None = None
        self._refreshed = -_REFRESH

    def _client(self, provider: FocProvider) -> CurioClient:
        return CurioClient(provider.service_url, self.config.foc.request_timeout)  # type: ignore[union-attr]

    def start(self) -> None:
        self._thread = spawn(self._run, "foc")

    def thread(self) -> SupervisedThread | None:
        return self._thread

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)

    def offer(self, key: str, piece_cid: str, size: int) -> None:
        with self._lock:
            self._offers.append((key, piece_cid, size))
        self._wake.set()

    def proven_copies(self, key: str) -> int:
        return self.engine.proven_copies(key)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.round()
            self._wake.wait(self.config.foc.poll_interval)  # type: ignore[union-attr]
            self._wake.clear()

    def _refresh(self) -> None:
        foc, view = self.config.foc, self.engine.view
        assert foc is not None
        if time.monotonic() - self._refreshed < _REFRESH and self.engine.providers:
            return
        found = read_providers(self.rpc, view.a.service_provider_registry, view.a.fwss)
        cap, usdfc = foc.max_price_per_tib_month, view.a.usdfc
        rows = eligible(
            found, pins=foc.providers, max_price=cap, usdfc=usdfc, score=self.engine.score
        )
        self.engine.set_providers(rows)
        self._refreshed = time.monotonic()

    def round(self) -> None:
        """One pass; never raises a GatewayError (it becomes status)."""
        try:
            self.rpc.check_chain_id(self.chain_id)
            self._refresh()
        except WrongChainId as exc:
            self.stopped = str(exc)
            return
        except GatewayError as exc:
            self.last_error = str(exc)
            return
        self._top_up()
        with self._lock:
            offers, self._offers = self._offers, []
        try:
            for key, cid, size in offers:
                self.engine.offer(key, cid, size)
            step(self.engine)
            self.last_error = ""
        except GatewayError as exc:
            self.last_error = str(exc)
            log.warning("foc: %s", exc)

    def _top_up(self) -> None:
        foc = self.config.foc
        assert foc is not None
        try:
            top_up(
                self.sender,
                self.engine.view.a,
                foc.deposit_topup_below,
                foc.deposit_topup_amount,
                foc.budget,
            )
            self.stopped = ""
        except FeeAboveCap as exc:
            self.stopped = str(exc)
        except GatewayError as exc:
            self.last_error = f"top-up: {exc}"

    def stats(self) -> dict[str, Any]:
        rows = provider_stats(self.engine)
        return {
            "enabled": True,
            "chain_id": self.chain_id,
            "rpc": self.rpc.url,
            "spending": "stopped" if self.stopped else "ok",
            "stopped": self.stopped or None,
            "planning_blocked": self.engine.blocked or None,
            "usdfc_reserved": str(self.engine.reserved()),
            "usdfc_budget": str(self.engine.settings.budget),
            "providers": rows,
            "pending_transactions": [o.key for o in self.sender.pending()],
            "last_error": self.last_error or None,
        }
