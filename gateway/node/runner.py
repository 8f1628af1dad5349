"""Run a node: in-process (``start_node``), in a background thread (``NodeThread``, for tests of
other components), or until a signal (``serve``, what ``node run`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from nacl.signing import SigningKey

from gateway.errors import GatewayError
from gateway.keys import load_identity
from gateway.node.announce import Announcer
from gateway.node.chainport import PdpChain
from gateway.node.config import NodeConfig
from gateway.node.connections import ConnectionGuard
from gateway.node.quietlog import quiet_third_party_logs
from gateway.node.server import make_app
from gateway.node.service import NodeService
from gateway.sdnotify import notify

__all__ = ["NodeThread", "RunningNode", "serve", "start_node"]

log = logging.getLogger(__name__)
Clock = Callable[[], float]
_FD_RESERVE = 64  # descriptors kept for piece files, the replay log, threads and the broker
# asyncio accepts up to ``backlog`` connections in one go before any evicted one's descriptor is
# closed (that happens on a later loop turn): the cap leaves room for a whole batch, else accept()
# hits EMFILE and asyncio logs an ERROR and stops accepting for a second.
_BACKLOG = 32


def connection_cap(configured: int) -> int:
    """``max_connections``, lowered to fit the soft ``RLIMIT_NOFILE`` (systemd LimitNOFILE):
    past it accept() fails with EMFILE in a loop and nobody gets in."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = soft - _FD_RESERVE - _BACKLOG
    if soft == resource.RLIM_INFINITY or configured <= room:
        return configured
    fitted = max(4, room)
    log.warning(
        "max_connections %d lowered to %d to fit the file limit %d (raise LimitNOFILE)",
        configured, fitted, soft,
    )  # fmt: skip
    return fitted


@dataclass
class RunningNode:
    service: NodeService
    runner: web.AppRunner
    url: str
    announcer: Announcer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    server: asyncio.Server | None = None
    connections: ConnectionGuard | None = None

    @property
    def provider(self) -> str:
        return self.service.provider

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.announcer is not None:
            await self.announcer.stop()
        if self.server is not None:
            self.server.close()
        await self.runner.cleanup()
        self.service.replay.close()


async def _gc_loop(service: NodeService) -> None:
    while True:
        await asyncio.sleep(service.config.gc_interval)
        try:
            if service.chain is not None:
                await service.settle_pending()
            await service.collect_garbage()
        except GatewayError as exc:
            log.error("deal garbage collection failed: %s", exc)


async def start_node(
    config: NodeConfig,
    clock: Clock = time.time,
    monotonic: Clock = time.monotonic,
    key: SigningKey | None = None,
    chain: PdpChain | None = None,
) -> RunningNode:
    """Start serving ``config`` (``listen`` may use port 0); ``key`` defaults to the key file;
    ``chain``: the data-set routes' port (tests inject a fake); by default the real one when
    ``[node] chain_rpc`` is set, else none (the data-set routes answer 501)."""
    if chain is None and config.chain is not None:
        from gateway.node.chain_pdp import connect  # eth-account only for FOC providers

        chain = await asyncio.to_thread(connect, config.chain)
    service = NodeService(config, key or load_identity(config.identity), clock, monotonic, chain)
    await service.recover()
    limiter = quiet_third_party_logs()
    guard = ConnectionGuard(connection_cap(config.max_connections), config.header_timeout, limiter)
    runner = web.AppRunner(
        make_app(service, guard, limiter), access_log=None, keepalive_timeout=config.header_timeout
    )
    await runner.setup()
    handlers = runner.server
    assert handlers is not None  # set by setup()
    try:
        server = await asyncio.get_running_loop().create_server(
            guard.factory(handlers), config.host, config.port, reuse_address=True, backlog=_BACKLOG
        )
    except OSError as exc:
        await runner.cleanup()
        service.replay.close()
        raise GatewayError(f"node: cannot listen on {config.listen}: {exc.strerror}") from exc
    host, port = server.sockets[0].getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    if config.public_url is None:
        service.url = url
    service.connection_counts = guard.counts
    node = RunningNode(service, runner, url, server=server, connections=guard)
    node.tasks.append(asyncio.create_task(guard.run()))
    node.tasks.append(asyncio.create_task(_gc_loop(service)))
    if config.fleet_broker:
        node.announcer = Announcer(
            service.ask,
            service.provider_id,
            config.broker_host,
            config.broker_port,
            config.announce_interval,
        )
        node.announcer.start()
    return node


async def serve(config: NodeConfig) -> None:
    """``node run``: serve until SIGTERM or SIGINT, telling systemd when ready."""
    node = await start_node(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("storage node %s serving on %s", node.provider, node.url)
    print(f"storage node {node.provider} serving on {node.url}", flush=True)
    notify("READY=1\nSTATUS=serving " + node.url)
    try:
        await stop.wait()
    finally:
        notify("STOPPING=1")
        await node.stop()


class NodeThread:
    """A node on its own event loop in a background thread: ``url = NodeThread(cfg).start()``."""

    def __init__(
        self, config: NodeConfig, clock: Clock = time.time, key: SigningKey | None = None
    ) -> None:
        self.config = config
        self.clock = clock
        self.key = key
        self.node: RunningNode | None = None
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="depin-node"
        )

    def start(self, timeout: float = 30.0) -> str:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_node(self.config, self.clock, key=self.key), self._loop
        )
        self.node = future.result(timeout)
        self.url = self.node.url
        return self.url

    def stop(self, timeout: float = 30.0) -> None:
        if self.node is not None:
            asyncio.run_coroutine_threadsafe(self.node.stop(), self._loop).result(timeout)
            self.node = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> NodeThread:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
