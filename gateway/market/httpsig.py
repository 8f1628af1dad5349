"""HTTP request signatures: an RFC 9421 subset with Ed25519, and replay protection (pure).

The client signs::

    "@method": POST
    "@path": /market/v1/deals
    "@query": ?pieceCid=...                      (only when the request has a query)
    "content-digest": sha-256=:<base64>:
    "@signature-params": ("@method" "@path" "@query" "content-digest");created=<unix>;
        keyid="ed25519:<hex>";nonce="<random>";alg="ed25519"      (one line on the wire)

and sends ``Content-Digest``, ``Signature-Input: sig1=<params>`` and ``Signature: sig1=:<b64>:``
(RFC 9421 sections 2.3 and 2.5; RFC 9530 for Content-Digest). The server recomputes the digest
over the body it received (never trusting the client's), checks the signature, that ``created``
is within ``max_skew`` seconds of its clock, and that the nonce was not seen in that window.
The verified ``keyid`` is the client's identity: any key may deal (permissionless), but only the
key that made a deal may act on it.

Verification accepts every form RFC 9421 allows for that: any label (several signatures: the
first label in ``Signature-Input`` that ``Signature`` also has is checked), components in any
order and more of them (derived ``@method @path @query @authority``, and header fields), any
parameter order, ``expires`` (refused once passed), ``alg`` optional (``ed25519`` if given),
``nonce`` optional (without one, the signature itself is the replay key). Required: ``created``,
``keyid``, and coverage of ``@method``, ``@path``, ``content-digest`` and ``@query`` when the
request has a query. Structured-field parsing: ``sfv``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from gateway.errors import InputError, KeyMaterialError
from gateway.keys import format_gateway_public, parse_gateway_public
from gateway.market.sfv import SignatureInput, parse_signature_inputs, parse_signatures

__all__ = ["ReplayCache", "content_digest", "sign_request", "verify_request"]

LABEL = "sig1"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def _fail(reason: str) -> InputError:
    return InputError("http-signature", reason)


def content_digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def _components(query: str) -> list[str]:
    return ["@method", "@path", *(["@query"] if query else []), "content-digest"]


def _base(method: str, path: str, query: str, digest: str, params: str) -> bytes:
    values = {"@method": method.upper(), "@path": path, "@query": "?" + query,
              "content-digest": digest}  # fmt: skip
    lines = [f'"{name}": {values[name]}' for name in _components(query)]
    lines.append(f'"@signature-params": {params}')
    return "\n".join(lines).encode()


def _params(query: str, created: int, keyid: str, nonce: str) -> str:
    covered = " ".join(f'"{c}"' for c in _components(query))
    return f'({covered});created={created};keyid="{keyid}";nonce="{nonce}";alg="ed25519"'


def sign_request(
    method: str, path: str, query: str, body: bytes, key: SigningKey, created: int, nonce: str
) -> dict[str, str]:
    """Headers to add to a request (``query`` without the leading "?")."""
    digest = content_digest(body)
    params = _params(query, created, format_gateway_public(key.verify_key), nonce)
    signature = key.sign(_base(method, path, query, digest, params)).signature
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{LABEL}={params}",
        "Signature": f"{LABEL}=:{base64.b64encode(signature).decode()}:",
    }


class ReplayCache:
    """Nonces seen within the skew window, bounded by ``max_entries``.

    Entries leave only when no signature could still be fresh with them (older than twice the
    window); when the cache is full of live ones the request is refused ("replay cache full"),
    since forgetting a live nonce would let its request be replayed. ``record`` is a hook for
    subclasses that persist what is added.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def forget_before(self, oldest: int) -> None:
        # insertion order is arrival order, and created is within the skew of arrival: an entry
        # out of order by at most the window is kept a little longer, never dropped early
        while self._seen and next(iter(self._seen.values())) < oldest:
            self._seen.popitem(last=False)

    def check_and_add(self, keyid: str, nonce: str, created: int, now: int, window: int) -> None:
        self.forget_before(now - 2 * window)
        if (keyid, nonce) in self._seen:
            raise _fail("replayed request (nonce already used)")
        if len(self._seen) >= self.max_entries:
            raise _fail("replay cache full; retry in a few seconds")
        self._seen[(keyid, nonce)] = created
        self.record(keyid, nonce, created, now)

    def add_known(self, keyid: str, nonce: str, created: int) -> None:
        """Restore an entry (loading persisted state); no hook, no checks."""
        self._seen[(keyid, nonce)] = created

    def record(self, keyid: str, nonce: str, created: int, now: int) -> None:
        """Called after an entry is added; persistent caches write it down."""


def _required(query: str) -> set[str]:
    return {"@method", "@path", "content-digest", *(["@query"] if query else [])}


def _component_value(
    name: str, method: str, path: str, query: str, lower: Mapping[str, str], digest: str
) -> str:
    derived = {"@method": method.upper(), "@path": path, "@query": "?" + query,
               "content-digest": digest}  # fmt: skip
    if name in derived:
        return derived[name]
    if name == "@authority" and "host" in lower:
        return lower["host"].strip().lower()
    if not name.startswith("@") and name in lower:
        return lower[name].strip()
    raise _fail(f"signature covers {name!r}, which this request does not have")


def _choose(lower: Mapping[str, str]) -> tuple[SignatureInput, bytes]:
    signature_input = lower.get("signature-input")
    signature = lower.get("signature")
    if not signature_input or not signature:
        raise _fail("unsigned request: Signature-Input and Signature headers are required")
    try:
        inputs = parse_signature_inputs(signature_input)
        signatures = parse_signatures(signature)
    except ValueError as exc:
        raise _fail(f"malformed Signature-Input or Signature header: {exc}") from None
    for member in inputs:
        if member.label in signatures:
            return member, signatures[member.label]
    raise _fail("no label of Signature-Input has a Signature")


def _check_params(member: SignatureInput, query: str, now: int, max_skew: int) -> int:
    missing = _required(query) - set(member.components)
    if missing:
        raise _fail(f"signature must cover {' '.join(sorted(missing))}")
    created, expires = member.params.get("created"), member.params.get("expires")
    alg = member.params.get("alg", "ed25519")
    if not isinstance(created, int) or isinstance(created, bool):
        raise _fail("signature parameter created (an integer) is required")
    if not isinstance(member.params.get("keyid"), str):
        raise _fail("signature parameter keyid (a string) is required")
    if alg != "ed25519":
        raise _fail(f"alg {alg!r} is not ed25519")
    if abs(now - created) > max_skew:
        raise _fail(f"signature created {now - created:+d} s from now (allowed ±{max_skew} s)")
    if expires is not None and (not isinstance(expires, int) or now > expires):
        raise _fail("signature expired (expires has passed)")
    return created


def verify_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    now: int,
    replay: ReplayCache,
    max_skew: int = 300,
    *,
    body_digest: str | None = None,
) -> VerifyKey:
    """The verified client key, or ``InputError`` saying exactly what is wrong.

    ``body_digest`` (streamed bodies): the ``Content-Digest`` the caller will check against the
    body it receives, used instead of hashing ``body``. A server that authenticates an upload
    before reading it passes the request's ``Content-Digest`` header here, then MUST compare
    ``content_digest`` of the bytes it actually stored with it (the node does, see
    ``gateway/node``), so the client's hash is never trusted, only checked.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    member, raw = _choose(lower)
    created = _check_params(member, query, now, max_skew)
    digest = content_digest(body) if body_digest is None else body_digest
    claimed = lower.get("content-digest")
    if claimed is not None and claimed != digest:
        raise _fail("Content-Digest does not match the body")
    try:
        key = parse_gateway_public(str(member.params["keyid"]))
    except KeyMaterialError as exc:
        raise _fail(f"bad keyid: {exc}") from None
    lines = [
        f'"{name}": {_component_value(name, method, path, query, lower, digest)}'
        for name in member.components
    ]
    lines.append(f'"@signature-params": {member.serialized}')
    try:
        key.verify("\n".join(lines).encode(), raw)
    except (BadSignatureError, ValueError):
        raise _fail("signature does not verify") from None
    keyid = format_gateway_public(key)  # one spelling per key, whatever the header said
    nonce = member.params.get("nonce")
    if nonce is None:  # the signature itself: an identical request is a replay
        nonce = base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:24]).decode()
    if not isinstance(nonce, str) or not _NONCE.match(nonce):
        raise _fail("nonce must be 8..64 characters of A-Z a-z 0-9 _ -")
    replay.check_and_add(keyid, nonce, created, now, max_skew)
    return key
