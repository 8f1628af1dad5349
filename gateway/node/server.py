"""The node's HTTP API (aiohttp): the middleware every request passes, and the app, whose
routes live by area in ``routes_pieces`` (Curio's piece API and ``/piece``), ``routes_datasets``
(Curio's data-set API) and ``routes_market`` (ours, and status), each thin over ``NodeService``.

Authentication: market writes carry an RFC 9421 signature or an EdDSA JWT Bearer token
(``auth``); the Curio routes are open to anyone, as in Curio, and what an unauthenticated caller
can hold is capped and temporary (``unclaimed``). Reads are open on purpose: pieces are
ciphertext (only owners hold the keys; DESIGN section 2), proofs only reveal 32-byte leaves of
that ciphertext, and anyone auditing a node must be able to fetch and check without a deal of
their own. Every request is also rate-limited per remote address, and signed ones per client key.

Errors are ``{"error", "code", "message"}`` JSON with a 4xx status (501 for the data-set routes
of a node without a chain); a 500 would be a bug (and is logged). A malformed request is the
client's fault: one rate-limited WARNING line (``quietlog``), never an ERROR with a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import ClientPayloadError, web
from aiohttp.typedefs import Middleware

from gateway.errors import GatewayError, InputError
from gateway.node.connections import ConnectionGuard
from gateway.node.http_common import MAX_JSON_BODY, error_response
from gateway.node.quietlog import LogLimiter
from gateway.node.routes_datasets import DataSetRoutes
from gateway.node.routes_market import MarketRoutes
from gateway.node.routes_pieces import PieceRoutes
from gateway.node.service import ClientError, NodeService

__all__ = ["make_app"]

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_LOGGED = frozenset({400, 408, 413})  # malformed, not merely refused (401, 404, 409, 429)
# Whatever a parser deep down raises on bytes it could not take is still the client's bytes.
_PARSE_ERRORS = (InputError, ValueError, UnicodeError, RecursionError, OverflowError)


def _guarded(
    service: NodeService, limiter: LogLimiter, connections: ConnectionGuard | None
) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if connections is not None:
            connections.request_started(request.transport)
        try:
            response = await _answer(request, handler)
        finally:
            if connections is not None:
                connections.request_done(request.transport)
        return response

    def refused(request: web.Request, status: int, code: str, message: str) -> None:
        service.refusals[code] += 1
        if status in _LOGGED:
            # one line whatever the client put in the message (no forged log lines)
            flat = " ".join(message.split())[:200]
            limiter.warning(
                log, "refused %s %.80r from %s: %s", request.method, request.path,
                request.remote, flat,
            )  # fmt: skip

    async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        return _as_curio(request, await _refusals(request, handler))

    async def _refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            service.limit_requests(f"ip:{request.remote}")
            return await handler(request)
        except ClientError as exc:
            refused(request, exc.status, exc.code, exc.message)
            return error_response(exc.status, exc.code, exc.message, exc.retry_after)
        except web.HTTPRequestEntityTooLarge:
            refused(request, 413, "too_large", "body too large")
            return error_response(413, "too_large", f"request body over {MAX_JSON_BODY} bytes")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(
                exc.status, "not_found" if exc.status == 404 else "bad_request", exc.reason
            )
        except (ConnectionError, ClientPayloadError) as exc:
            return error_response(400, "bad_request", f"request body interrupted: {exc}")
        except _PARSE_ERRORS as exc:
            message = f"request not understood ({type(exc).__name__})"
            refused(request, 400, "bad_request", f"{message}: {exc}")
            return error_response(400, "bad_request", message)
        except GatewayError as exc:
            log.error("%s %s failed: %s", request.method, request.path, exc)
            return error_response(503, "unavailable", str(exc))

    return guard


def _curio(request: web.Request) -> bool:
    """A request to the Curio piece routes from a Curio client: no credentials, no JSON asked."""
    if not request.path.startswith(("/pdp/piece", "/pdp/ping")):
        return False
    headers = request.headers
    signed = "Authorization" in headers or "Signature-Input" in headers
    return not signed and "application/json" not in headers.get("Accept", "")


def _kept(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k in ("Retry-After", "Content-Range")}


def _as_curio(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Curio answers its piece routes' errors with http.Error: the message as text/plain, and
    Synapse turns a JSON error body into a bare JsonError instead of its own error types."""
    if response.status < 400 or not isinstance(response, web.Response) or not _curio(request):
        return response
    body = response.body if isinstance(response.body, bytes) else b"{}"
    message = str(json.loads(body or b"{}").get("message", "")) + "\n"
    return web.Response(status=response.status, text=message, headers=_kept(response.headers))


def make_app(
    service: NodeService,
    connections: ConnectionGuard | None = None,
    limiter: LogLimiter | None = None,
) -> web.Application:
    middleware = _guarded(service, limiter or LogLimiter(), connections)
    app = web.Application(middlewares=[middleware], client_max_size=MAX_JSON_BODY)
    app.add_routes(PieceRoutes(service, connections).routes())
    app.add_routes(DataSetRoutes(service).routes())
    app.add_routes(MarketRoutes(service).routes())
    return app
