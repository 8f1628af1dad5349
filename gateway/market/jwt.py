"""EdDSA JWT Bearer tokens (RFC 7519, RFC 8037 ``alg: EdDSA`` with Ed25519), the other way a
market request may be authenticated (DESIGN section 4; Curio accepts ES256 or EdDSA JWTs).

    Authorization: Bearer <b64url header>.<b64url claims>.<b64url signature>

Header: ``{"alg": "EdDSA", "kid": "ed25519:<hex>"}`` (``typ`` optional); the ``kid`` is the
client's identity, as ``keyid`` is in an RFC 9421 signature (permissionless: no key is
registered first). Claims: ``iat`` (required, within ``max_skew`` of the node's clock), ``exp``
(optional, refused once passed), ``jti`` (required, 8..64 of ``A-Za-z0-9_-``: recorded in the
replay cache, so a token authenticates one request), ``htm`` / ``htu`` (optional: when present
they must equal the request's method and path). Other claims (Curio's ``service_name``) are
ignored. A token covers no body: the node still checks a ``Content-Digest`` against the bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from gateway.errors import InputError, KeyMaterialError
from gateway.keys import format_gateway_public, parse_gateway_public
from gateway.market.httpsig import ReplayCache

__all__ = ["make_token", "verify_token"]

_JTI = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_MAX_TOKEN = 4096


def _fail(reason: str) -> InputError:
    return InputError("jwt", reason)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _fail("token part is not base64url") from None


def make_token(key: SigningKey, claims: dict[str, Any]) -> str:
    """A token signed by ``key`` (tests and our own clients)."""
    header = {"alg": "EdDSA", "typ": "JWT", "kid": format_gateway_public(key.verify_key)}
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(claims, separators=(",", ":")).encode())
    )
    return signing_input + "." + _b64(key.sign(signing_input.encode()).signature)


def _json_part(text: str) -> dict[str, Any]:
    try:
        data = json.loads(_unb64(text))
    except (ValueError, RecursionError):
        raise _fail("token part is not JSON") from None
    if not isinstance(data, dict):
        raise _fail("token part is not a JSON object")
    return data


def _int_claim(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"claim {name} must be a number")
    return int(value)


def verify_token(
    token: str,
    method: str,
    path: str,
    now: int,
    replay: ReplayCache,
    max_skew: int = 300,
) -> VerifyKey:
    """The verified client key of a Bearer token, or ``InputError`` saying what is wrong."""
    parts = token.split(".")
    if len(token) > _MAX_TOKEN or len(parts) != 3:
        raise _fail("not a JWT (three base64url parts)")
    header, claims = _json_part(parts[0]), _json_part(parts[1])
    if header.get("alg") != "EdDSA":
        raise _fail(f"alg {header.get('alg')!r} is not EdDSA")
    try:
        key = parse_gateway_public(str(header.get("kid", "")))
    except KeyMaterialError as exc:
        raise _fail(f"kid must be the client key ed25519:<hex>: {exc}") from None
    try:
        key.verify(f"{parts[0]}.{parts[1]}".encode(), _unb64(parts[2]))
    except (BadSignatureError, ValueError):
        raise _fail("token signature does not verify") from None
    issued, expires = _int_claim(claims, "iat"), _int_claim(claims, "exp")
    if issued is None or abs(now - issued) > max_skew:
        raise _fail(f"iat must be within ±{max_skew} s of now")
    if expires is not None and now >= expires:
        raise _fail("token expired (exp has passed)")
    for claim, actual in (("htm", method.upper()), ("htu", path)):
        if claim in claims and claims[claim] != actual:
            raise _fail(f"token is for {claim} {claims[claim]!r}, not {actual!r}")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not _JTI.match(jti):
        raise _fail("claim jti (8..64 of A-Za-z0-9_-) is required")
    replay.check_and_add(format_gateway_public(key), jti, issued, now, max_skew)
    return key
