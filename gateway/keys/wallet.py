"""The secp256k1 wallet key file (FIL for gas, USDFC for Filecoin Pay) and its EVM address.

    wallet.key    "depin-secp256k1-secret:<64 hex digits>\\n"    mode 0600, never overwritten

The file appears complete or not at all (written to a private temp file, fsynced, then hard-linked
into place, which fails if the name exists), so a crash during ``wallet init`` can neither leave a
half key nor replace a funded one. A key file that group or others can read is refused: it may
already have leaked, and silently tightening it would hide that. The secret is never put in a
repr, an error, a log line or a status field; only the address is shown.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import KeyMaterialError
from gateway.fs import fsync_dir
from gateway.keys.ethlib import load_eth_account

__all__ = ["SECP256K1_ORDER", "Wallet", "create_wallet", "load_wallet", "wallet_from_secret"]

_PREFIX = "depin-secp256k1-secret:"
_MAX_FILE = 256  # a key file is ~88 bytes; never read an arbitrary file into memory
# Group order n of secp256k1 (SEC 2 v2, section 2.4.1): a secret key is an integer in [1, n-1].
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True, slots=True)
class Wallet:
    path: Path | None  # None: an in-memory key (a session key, a published test key)
    address: str  # EIP-55
    _secret: bytes = field(repr=False, compare=False)

    def sign_typed_data(self, full_message: dict[str, Any]) -> bytes:
        """EIP-712 signature (r ‖ s ‖ v, 65 bytes, v = 27/28) of an ``eth_signTypedData_v4``
        style message (``types``, ``primaryType``, ``domain``, ``message``)."""
        load_eth_account()
        from eth_account import Account
        from eth_account.messages import encode_typed_data

        signed = Account.sign_message(encode_typed_data(full_message=full_message), self._secret)
        return bytes(signed.signature)

    def sign_transaction(self, transaction: dict[str, Any]) -> bytes:
        """The raw signed transaction (for ``eth_sendRawTransaction``); ``chainId`` required."""
        load_eth_account()
        from eth_account import Account

        return bytes(Account.sign_transaction(transaction, self._secret).raw_transaction)

    def sign_digest(self, digest: bytes) -> tuple[int, bytes, bytes]:
        """(v, r, s) over a 32-byte digest the caller built (an EIP-2612 permit)."""
        load_eth_account()
        from eth_account import Account

        signed = Account.unsafe_sign_hash(digest, self._secret)
        return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def _address_of(secret: bytes) -> str:
    load_eth_account()
    from eth_account import Account

    address: str = Account.from_key(secret).address
    return address


def _check_secret(secret: bytes, path: Path | None) -> None:
    if len(secret) != 32 or not 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
        raise KeyMaterialError(str(path or ""), "not a valid secp256k1 secret key")


def wallet_from_secret(secret: bytes) -> Wallet:
    """An in-memory wallet (no file): ephemeral session keys and published test vectors."""
    _check_secret(secret, None)
    return Wallet(None, _address_of(secret), secret)


def create_wallet(path: Path, token_bytes: Callable[[int], bytes] = secrets.token_bytes) -> Wallet:
    """Create a new key at ``path`` (mode 0600); refuse if anything exists there."""
    if os.path.lexists(path):
        raise KeyMaterialError(str(path), "a wallet key already exists here; refusing to overwrite")
    secret = token_bytes(32)
    _check_secret(secret, path)  # p(out of range) ~ 2^-128; a broken RNG must not slip through
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise KeyMaterialError(str(path), f"cannot create key file: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)  # umask only removes bits; state it anyway
            handle.write(_PREFIX + secret.hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # atomic, and fails if path exists: no race with a second init
    except FileExistsError:
        raise KeyMaterialError(
            str(path), "a wallet key already exists here; refusing to overwrite"
        ) from None
    except OSError as exc:
        raise KeyMaterialError(str(path), f"cannot create key file: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return Wallet(path, _address_of(secret), secret)


def load_wallet(path: Path) -> Wallet:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise KeyMaterialError(
            str(path), "no wallet key here (create one: depin-gateway wallet init)"
        ) from None
    except OSError as exc:
        raise KeyMaterialError(str(path), f"cannot open wallet key: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyMaterialError(str(path), "wallet key is not a regular file")
        if info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise KeyMaterialError(
                str(path),
                f"wallet key is readable by group or others (mode {mode:04o}); refusing to use"
                f" it. If nobody else could read it: chmod 600 {path}",
            )
        raw = handle.read(_MAX_FILE + 1)
    text = raw.decode("ascii", "replace").strip()
    digits = text[len(_PREFIX) :] if text.startswith(_PREFIX) else ""
    if len(raw) > _MAX_FILE or len(digits) != 64 or not set(digits) <= set("0123456789abcdef"):
        raise KeyMaterialError(str(path), "not a depin-gateway wallet key file (or damaged)")
    secret = bytes.fromhex(digits)
    _check_secret(secret, path)
    return Wallet(path, _address_of(secret), secret)
