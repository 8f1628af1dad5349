"""The sealing core: readings -> signed, encrypted, erasure-coded batches, and back.

Pure (no asyncio, no clock) except ``store``, the on-disk vault. Modules, one concept each:
``codec`` (readings <-> bytes), ``compress`` (zstd + per-family dictionaries), ``dictionary``
(the encrypted dictionary object), ``crypto`` (data keys, envelopes, wrapped keys), ``erasure``
(zfec fragments), ``header`` (signed DAG-CBOR headers), ``seal`` (seal/open a batch),
``verify`` (chain verification), ``store`` (the vault), ``synthetic`` (test/demo readings).
"""

from gateway.seal.compress import DictionaryTrainer, ZstdDictionary, topic_family
from gateway.seal.dictionary import DictionaryObject, open_dictionary, seal_dictionary
from gateway.seal.header import BatchHeader, KeyRotation
from gateway.seal.seal import SealedBatch, SealStats, open_batch, seal_batch
from gateway.seal.signed import SignedHeader
from gateway.seal.store import Vault
from gateway.seal.verify import VerifyReport, verify_chain, verify_vault

__all__ = [
    "BatchHeader",
    "DictionaryObject",
    "DictionaryTrainer",
    "KeyRotation",
    "SealStats",
    "SealedBatch",
    "SignedHeader",
    "Vault",
    "VerifyReport",
    "ZstdDictionary",
    "open_batch",
    "open_dictionary",
    "seal_batch",
    "seal_dictionary",
    "topic_family",
    "verify_chain",
    "verify_vault",
]
