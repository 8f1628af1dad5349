"""The local status endpoint: GET /status (JSON), /metrics (Prometheus), /healthz."""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web

from gateway.errors import ConfigError
from gateway.status import StatusSnapshot, prometheus_text

__all__ = ["start_status_server"]


async def start_status_server(
    snapshot: Callable[[], StatusSnapshot], host: str, port: int
) -> web.AppRunner:
    async def status(_request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(snapshot().to_json()), content_type="application/json")

    async def metrics(_request: web.Request) -> web.Response:
        body = prometheus_text(snapshot())
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    async def healthz(_request: web.Request) -> web.Response:
        code, line = snapshot().health()
        return web.Response(status=code, text=line + "\n")

    app = web.Application()
    app.add_routes(
        [web.get("/status", status), web.get("/metrics", metrics), web.get("/healthz", healthz)]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:  # busy port, or a name that does not resolve (gaierror)
        await runner.cleanup()
        raise ConfigError(
            "status.listen",
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "choose a free port and an address of this host",
        ) from exc
    return runner
