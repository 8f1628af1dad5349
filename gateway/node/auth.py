"""Who is asking (a mixin of ``NodeService``): RFC 9421 signatures or EdDSA JWT Bearer tokens,
verified against the replay cache, and the per-client request rate limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.errors import InputError
from gateway.keys import format_gateway_public
from gateway.market.httpsig import verify_request
from gateway.market.jwt import verify_token
from gateway.node.client_error import ClientError
from gateway.node.config import NodeConfig
from gateway.node.ratelimit import RateLimiter
from gateway.node.replaylog import PersistentReplayCache

__all__ = ["AuthOps"]

Clock = Callable[[], float]


def _bearer(headers: Mapping[str, str]) -> str | None:
    for name, value in headers.items():
        if name.lower() == "authorization":
            scheme, _, token = value.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class AuthOps:
    config: NodeConfig
    clock: Clock
    monotonic: Clock
    replay: PersistentReplayCache
    requests: RateLimiter

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
        """The verified client key (``ed25519:<hex>``) of an RFC 9421-signed request or an
        EdDSA JWT Bearer token (``gateway.market.jwt``); 401 if neither verifies."""
        bearer = _bearer(headers)
        try:
            if bearer is not None:
                key = verify_token(
                    bearer, method, path, int(self.clock()), self.replay, self.config.max_skew
                )
            else:
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
            raise self._auth_refusal(exc.reason) from None
        client = format_gateway_public(key)
        self.limit_requests(f"key:{client}")
        return client

    def _auth_refusal(self, reason: str) -> ClientError:
        if "cache full" in reason:
            return self.refuse(ClientError(429, "rate_limited", reason, 5.0))
        code = (
            "unsigned"
            if reason.startswith("unsigned")
            else "replayed"
            if "replayed" in reason
            else "stale"
            if reason.startswith(("signature created", "iat must"))
            else "bad_signature"
        )
        return self.refuse(ClientError(401, code, f"request signature: {reason}"))

    def identify(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> str | None:
        """Like ``authenticate`` for routes open to anyone (Curio's "public" caller): ``None``
        when the request carries no credentials, the client key when it does (401 if they do
        not verify: a bad signature is never silently ignored)."""
        lower = {k.lower() for k in headers}
        if "authorization" not in lower and "signature-input" not in lower:
            return None
        return self.authenticate(method, path, query, headers, body)

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
