"""Batch encryption: envelopes open only with the data key; wrapped keys only for owners."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.public import PrivateKey

from gateway.errors import KeyMaterialError
from gateway.seal import crypto


@given(st.binary(max_size=2000))
def test_envelope_round_trip(plaintext: bytes) -> None:
    key = crypto.new_data_key()
    envelope = crypto.encrypt(key, plaintext)
    assert len(envelope) == len(plaintext) + crypto.ENVELOPE_OVERHEAD
    assert crypto.decrypt(key, envelope) == plaintext


def test_fresh_key_and_nonce_each_time() -> None:
    key = crypto.new_data_key()
    assert crypto.new_data_key() != key
    assert crypto.encrypt(key, b"same") != crypto.encrypt(key, b"same")


def test_wrong_data_key_raises_key_material_error() -> None:
    envelope = crypto.encrypt(crypto.new_data_key(), b"secret readings")
    with pytest.raises(KeyMaterialError, match="does not open"):
        crypto.decrypt(crypto.new_data_key(), envelope)


@pytest.mark.parametrize("position", [0, 3, 4, 27, 28, -1])
def test_any_flipped_envelope_byte_is_rejected(position: int) -> None:
    key = crypto.new_data_key()
    envelope = bytearray(crypto.encrypt(key, b"x" * 64))
    envelope[position] ^= 0x01
    with pytest.raises(KeyMaterialError):
        crypto.decrypt(key, bytes(envelope))


def test_every_owner_unwraps_the_same_data_key() -> None:
    owners = [PrivateKey.generate() for _ in range(3)]
    key = crypto.new_data_key()
    wrapped = crypto.wrap_data_key(key, [o.public_key for o in owners])
    assert all(len(w) == crypto.WRAPPED_KEY_BYTES for w in wrapped.values())
    assert all(crypto.unwrap_data_key(wrapped, o) == key for o in owners)


def test_a_non_owner_gets_a_clear_error() -> None:
    wrapped = crypto.wrap_data_key(crypto.new_data_key(), [PrivateKey.generate().public_key])
    stranger = PrivateKey.generate()
    with pytest.raises(KeyMaterialError, match="is not one of the 1 owner key"):
        crypto.unwrap_data_key(wrapped, stranger)


def test_a_damaged_wrapped_key_does_not_open() -> None:
    owner = PrivateKey.generate()
    wrapped = crypto.wrap_data_key(crypto.new_data_key(), [owner.public_key])
    pub = bytes(owner.public_key)
    wrapped[pub] = wrapped[pub][:-1] + bytes([wrapped[pub][-1] ^ 1])
    with pytest.raises(KeyMaterialError, match="does not open"):
        crypto.unwrap_data_key(wrapped, owner)


def test_sealing_to_nobody_is_refused() -> None:
    with pytest.raises(KeyMaterialError, match="no owner"):
        crypto.wrap_data_key(crypto.new_data_key(), [])
