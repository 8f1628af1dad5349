"""RFC 9421 signatures in every valid form (any label, any parameter order, ``expires``, no
nonce, several signatures, more components) and EdDSA JWT Bearer tokens: the verifier on its
own, then a real node taking a deal authenticated each way."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from gateway.errors import InputError
from gateway.keys import format_gateway_public
from gateway.market.httpsig import ReplayCache, content_digest, verify_request
from gateway.market.jwt import make_token, verify_token
from gateway.node import RunningNode, start_node
from gateway.testing.node_client import FakeClock, SigningClient, make_node_config, make_proposal

NOW = 1_760_000_000
BODY = b'{"x": 1}'
KEY = SigningKey(b"\x07" * 32)
KEYID = format_gateway_public(KEY.verify_key)


def _signed(
    label: str = "sig1",
    components: tuple[str, ...] = ("@method", "@path", "content-digest"),
    params: str = "",
    extra: dict[str, str] | None = None,
    key: SigningKey = KEY,
) -> dict[str, str]:
    """Headers of a POST /market/v1/deals signed exactly as described (params after the list)."""
    headers = {"Content-Digest": content_digest(BODY), "Host": "node.example", **(extra or {})}
    lower = {k.lower(): v for k, v in headers.items()}
    values = {"@method": "POST", "@path": "/market/v1/deals", "@authority": "node.example"}
    inner = "(" + " ".join(f'"{c}"' for c in components) + ")" + params
    lines = [f'"{c}": {values.get(c) or lower[c]}' for c in components]
    lines.append(f'"@signature-params": {inner}')
    signature = base64.b64encode(key.sign("\n".join(lines).encode()).signature).decode()
    headers["Signature-Input"] = f"{label}={inner}"
    headers["Signature"] = f"{label}=:{signature}:"
    return headers


def _verify(headers: dict[str, str], now: int = NOW, cache: ReplayCache | None = None) -> str:
    key = verify_request(
        "POST",
        "/market/v1/deals",
        "",
        headers,
        BODY,
        now,
        ReplayCache() if cache is None else cache,
        300,
    )
    return format_gateway_public(key)


def _nonce() -> str:
    return secrets.token_hex(8)


@pytest.mark.parametrize(
    "params",
    [
        f';created={NOW};keyid="{KEYID}";nonce="abcdefgh";alg="ed25519"',
        f';alg="ed25519";nonce="abcdefgh";keyid="{KEYID}";created={NOW}',
        f';keyid="{KEYID}";created={NOW}',  # no nonce, no alg
        f';created={NOW};expires={NOW + 60};keyid="{KEYID}";tag="synapse"',
    ],
)
def test_any_parameter_order_and_optional_parameters_verify(params: str) -> None:
    assert _verify(_signed(params=params)) == KEYID


def test_any_label_and_components_in_any_order_with_more_of_them() -> None:
    components = ("content-digest", "@authority", "content-type", "@path", "@method")
    headers = _signed(
        "my-client-7",
        components,
        f';created={NOW};keyid="{KEYID}";nonce="{_nonce()}"',
        {"Content-Type": "application/json"},
    )
    assert _verify(headers) == KEYID


def test_several_signatures_the_first_shared_label_is_checked() -> None:
    ours = _signed("b", params=f';created={NOW};keyid="{KEYID}";nonce="{_nonce()}"')
    headers = dict(ours)
    headers["Signature-Input"] = 'a=("@method");created=1;keyid="x", ' + ours["Signature-Input"]
    assert _verify(headers) == KEYID


def test_expires_passed_is_refused() -> None:
    headers = _signed(params=f';created={NOW - 10};expires={NOW - 1};keyid="{KEYID}"')
    with pytest.raises(InputError, match="expired"):
        _verify(headers)


def test_a_signature_without_nonce_cannot_be_replayed() -> None:
    headers = _signed(params=f';created={NOW};keyid="{KEYID}"')
    cache = ReplayCache()
    _verify(headers, cache=cache)
    with pytest.raises(InputError, match="replayed"):
        _verify(headers, cache=cache)


def test_required_coverage_and_alg_are_enforced() -> None:
    with pytest.raises(InputError, match="must cover content-digest"):
        _verify(_signed(components=("@method", "@path"), params=f';created={NOW};keyid="{KEYID}"'))
    with pytest.raises(InputError, match="not ed25519"):
        _verify(_signed(params=f';created={NOW};keyid="{KEYID}";alg="rsa-pss-sha512"'))
    tampered = _signed(params=f';created={NOW};keyid="{KEYID}"')
    tampered["Signature-Input"] = tampered["Signature-Input"].replace(str(NOW), str(NOW + 1))
    with pytest.raises(InputError, match="does not verify"):
        _verify(tampered)


def test_jwt_bearer_tokens_verify_once_and_bind_what_they_claim() -> None:
    claims = {"iat": NOW, "exp": NOW + 60, "jti": _nonce(), "service_name": "public"}
    token = make_token(KEY, claims)
    cache = ReplayCache()
    key = verify_token(token, "POST", "/market/v1/deals", NOW, cache)
    assert format_gateway_public(key) == KEYID
    with pytest.raises(InputError, match="replayed"):
        verify_token(token, "POST", "/market/v1/deals", NOW, cache)
    bound = make_token(KEY, {"iat": NOW, "jti": _nonce(), "htm": "GET"})
    with pytest.raises(InputError, match="htm"):
        verify_token(bound, "POST", "/market/v1/deals", NOW, cache)
    expired = make_token(KEY, {"iat": NOW - 100, "exp": NOW - 1, "jti": _nonce()})
    with pytest.raises(InputError, match="expired"):
        verify_token(expired, "POST", "/", NOW, cache)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(InputError):
        verify_token(forged, "POST", "/market/v1/deals", NOW, ReplayCache())
    _, _, rest = token.partition(".")
    es256 = base64.urlsafe_b64encode(b'{"alg":"ES256","kid":"' + KEYID.encode() + b'"}')
    with pytest.raises(InputError, match="not EdDSA"):
        verify_token(es256.rstrip(b"=").decode() + "." + rest, "POST", "/", NOW, ReplayCache())


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    running = await start_node(make_node_config(tmp_path), FakeClock())
    yield running
    await running.stop()


async def test_a_node_takes_deals_signed_in_another_form_or_by_bearer_token(
    node: RunningNode,
) -> None:
    clock = FakeClock()
    client = SigningClient(node.url, SigningKey.generate(), clock)
    keyid = format_gateway_public(client.key.verify_key)
    try:
        wire = make_proposal(client.key, node.provider, b"j" * 300, clock.epoch)
        token = make_token(client.key, {"iat": int(clock()), "jti": _nonce()})
        status, body, _ = await client.send(
            "POST", "/market/v1/deals", json_body=wire, sign=False,
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert status == 200 and body["body"]["accepted"], body
        raw = json.dumps(make_proposal(client.key, node.provider, b"k" * 300, clock.epoch))
        digest = content_digest(raw.encode())
        inner = f'("content-digest" "@method" "@path");keyid="{keyid}";created={int(clock())}'
        base = (
            f'"content-digest": {digest}\n"@method": POST\n"@path": /market/v1/deals\n'
            f'"@signature-params": {inner}'
        )
        signature = base64.b64encode(client.key.sign(base.encode()).signature).decode()
        headers = {
            "Content-Digest": digest,
            "Signature-Input": f"synapse={inner}",
            "Signature": f"synapse=:{signature}:",
        }
        status, body, _ = await client.send(
            "POST", "/market/v1/deals", raw.encode(), sign=False, headers=headers
        )
        assert status == 200 and body["body"]["accepted"], body
        status, body, _ = await client.send(
            "POST", "/market/v1/deals", raw.encode(), sign=False, headers=headers
        )
        assert (status, body["code"]) == (401, "replayed")
    finally:
        await client.close()
