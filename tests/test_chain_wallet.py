"""The wallet key file: mode 0600, atomic, never overwritten, refused when others can read it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import KeyMaterialError
from gateway.keys.ethlib import load_eth_account
from gateway.keys.wallet import (
    SECP256K1_ORDER,
    create_wallet,
    load_wallet,
    wallet_from_secret,
)

load_eth_account()  # keeps the recursion limit py_ecc raises (see ethlib)
from eth_account import Account  # noqa: E402

FIXED = bytes.fromhex("11" * 32)


def _secret_hex(path: Path) -> str:
    return path.read_text().strip().split(":", 1)[1]


def test_created_key_is_mode_0600_and_loads_to_the_same_address(tmp_path: Path) -> None:
    path = tmp_path / "state" / "wallet.key"
    wallet = create_wallet(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_wallet(path).address == wallet.address
    assert Account.from_key(bytes.fromhex(_secret_hex(path))).address == wallet.address
    assert [p.name for p in path.parent.iterdir()] == ["wallet.key"]  # no temp file left


def test_mode_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        create_wallet(tmp_path / "wallet.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "wallet.key").stat().st_mode) == 0o600


def test_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "wallet.key"
    first = create_wallet(path)
    before = path.read_bytes()
    with pytest.raises(KeyMaterialError, match="refusing to overwrite"):
        create_wallet(path)
    assert path.read_bytes() == before and load_wallet(path).address == first.address


def test_a_dangling_symlink_at_the_key_path_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.key"
    (tmp_path / "wallet.key").symlink_to(target)
    with pytest.raises(KeyMaterialError, match="refusing to overwrite"):
        create_wallet(tmp_path / "wallet.key")
    assert not target.exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_group_or_world_readable_key_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "wallet.key"
    create_wallet(path)
    path.chmod(mode)
    with pytest.raises(KeyMaterialError) as caught:
        load_wallet(path)
    message = str(caught.value)
    assert f"mode {mode:04o}" in message and f"chmod 600 {path}" in message
    assert _secret_hex(path) not in message


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"depin-secp256k1-secret:zz",
        b"depin-ed25519-secret:" + b"11" * 32,
        b"depin-secp256k1-secret:" + b"00" * 32,  # zero is not a key
        b"depin-secp256k1-secret:" + SECP256K1_ORDER.to_bytes(32, "big").hex().encode(),
        b"depin-secp256k1-secret:" + b"11" * 32 + b"\n" * 300,
    ],
)
def test_damaged_key_files_are_refused_without_echoing_them(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "wallet.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(KeyMaterialError) as caught:
        load_wallet(path)
    assert "11" * 16 not in str(caught.value)


def test_missing_key_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="wallet init"):
        load_wallet(tmp_path / "nope.key")


def test_a_broken_random_source_cannot_make_a_key(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError):
        create_wallet(tmp_path / "wallet.key", token_bytes=bytes)  # all zeros
    assert not (tmp_path / "wallet.key").exists()


def test_secret_never_appears_in_repr_or_str() -> None:
    wallet = wallet_from_secret(FIXED)
    assert FIXED.hex() not in repr(wallet) and FIXED.hex() not in str(wallet)
    assert wallet.address in repr(wallet)


def test_a_crash_mid_create_leaves_no_key(tmp_path: Path) -> None:
    """Killed right after the temp file is written (before link): the key path stays free."""
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "import gateway.keys.wallet as w\n"
        "def die(src, dst): os._exit(9)\n"
        "w.os.link = die\n"
        "w.create_wallet(Path(sys.argv[1]))\n"
    )
    path = tmp_path / "wallet.key"
    result = subprocess.run([sys.executable, "-c", code, str(path)], check=False)
    assert result.returncode == 9
    assert not path.exists()
    # The unlinked-never temp file holds a key nobody funded; it is as private as a key file.
    leftovers = list(tmp_path.iterdir())
    assert leftovers and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in leftovers)
    create_wallet(path)  # and init works afterwards
