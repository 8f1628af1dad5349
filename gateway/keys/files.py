"""Key files: the gateway's Ed25519 identity and the owners' X25519 key pairs.

Files are small text files so operators can read and back them up:

    identity.key    "depin-ed25519-secret:<hex seed>"    mode 0600, never overwritten
    owner.key       "depin-x25519-secret:<hex secret>"   mode 0600
    public keys     "ed25519:<hex>" (gateway) and "x25519:<hex>" (owner), as printed and configured
"""

from __future__ import annotations

import os
from pathlib import Path

from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from gateway.errors import KeyMaterialError

__all__ = [
    "create_identity",
    "create_owner_key",
    "format_gateway_public",
    "format_owner_public",
    "load_identity",
    "load_owner_secret",
    "parse_gateway_public",
    "parse_owner_public",
]

_IDENTITY_PREFIX = "depin-ed25519-secret:"
_OWNER_PREFIX = "depin-x25519-secret:"
_GATEWAY_PUB = "ed25519:"
_OWNER_PUB = "x25519:"


def _write_secret(path: Path, text: str) -> None:
    """Create ``path`` mode 0600 with O_EXCL: an existing key is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyMaterialError(
            str(path), "a key already exists here; refusing to overwrite it"
        ) from None
    except OSError as exc:
        raise KeyMaterialError(str(path), f"cannot create key file: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _read_secret(path: Path, prefix: str, size: int) -> bytes:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise KeyMaterialError(str(path), f"cannot read key file: {exc.strerror}") from exc
    if not text.startswith(prefix):
        raise KeyMaterialError(str(path), f"not a {prefix.rstrip(':')} key file")
    try:
        raw = bytes.fromhex(text[len(prefix) :])
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise KeyMaterialError(str(path), "key file is damaged (expected 32 hex-encoded bytes)")
    return raw


def create_identity(path: Path, key: SigningKey | None = None) -> SigningKey:
    key = key or SigningKey.generate()
    _write_secret(path, _IDENTITY_PREFIX + bytes(key).hex())
    return key


def load_identity(path: Path) -> SigningKey:
    return SigningKey(_read_secret(path, _IDENTITY_PREFIX, 32))


def create_owner_key(path: Path, key: PrivateKey | None = None) -> PrivateKey:
    key = key or PrivateKey.generate()
    _write_secret(path, _OWNER_PREFIX + bytes(key).hex())
    return key


def load_owner_secret(path: Path) -> PrivateKey:
    return PrivateKey(_read_secret(path, _OWNER_PREFIX, 32))


def format_gateway_public(key: VerifyKey) -> str:
    return _GATEWAY_PUB + bytes(key).hex()


def format_owner_public(key: PublicKey) -> str:
    return _OWNER_PUB + bytes(key).hex()


def _parse_public(text: str, prefix: str) -> bytes:
    if not text.startswith(prefix):
        raise KeyMaterialError("", f"{text[:24]!r} is not a {prefix}<64 hex digits> public key")
    try:
        raw = bytes.fromhex(text[len(prefix) :])
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise KeyMaterialError("", f"{text[:24]!r}: a public key is 64 hex digits after {prefix!r}")
    return raw


def parse_gateway_public(text: str) -> VerifyKey:
    return VerifyKey(_parse_public(text.strip(), _GATEWAY_PUB))


def parse_owner_public(text: str) -> PublicKey:
    return PublicKey(_parse_public(text.strip(), _OWNER_PUB))
