"""Filecoin pieces: commP, piece CIDs v1/v2, the piece Merkle tree and proofs, CAR v1, DAG-CBOR.

Pure cores (bytes in, values out); ``commp_file`` and ``CarReader``/``write_car`` take a path or
stream. commP's hot loops use the optional C extension ``_commp_native`` (OpenSSL SHA-256) when it
was built; ``COMMP_BACKEND`` says "native" or "pure" (``DEPIN_COMMP_PURE=1`` forces pure).
"""

from gateway.piece.car import Block, CarFile, CarReader, decode_car, encode_car, write_car
from gateway.piece.cid import (
    Cid,
    decode_uvarint,
    encode_uvarint,
    piece_cid_v1,
    piece_cid_v2,
    piece_info_from_v2,
    piece_root_from_v1,
    v1_to_v2,
    v2_to_v1,
)
from gateway.piece.cli import piece_cid_main
from gateway.piece.commp import (
    MIN_PIECE_PAYLOAD,
    CommP,
    PieceInfo,
    commp,
    commp_file,
    padded_size_for,
    piece_proof,
    unpadded_size,
)
from gateway.piece.dagcbor import cid_for_dag_cbor, dag_cbor_decode, dag_cbor_encode
from gateway.piece.merkle import BACKEND as COMMP_BACKEND
from gateway.piece.merkle import (
    ZERO_ROOTS,
    inclusion_path,
    tree_layers,
    verify_inclusion,
    zero_root,
)

__all__ = [
    "COMMP_BACKEND",
    "MIN_PIECE_PAYLOAD",
    "ZERO_ROOTS",
    "Block",
    "CarFile",
    "CarReader",
    "Cid",
    "CommP",
    "PieceInfo",
    "cid_for_dag_cbor",
    "commp",
    "commp_file",
    "dag_cbor_decode",
    "dag_cbor_encode",
    "decode_car",
    "decode_uvarint",
    "encode_car",
    "encode_uvarint",
    "inclusion_path",
    "padded_size_for",
    "piece_cid_main",
    "piece_cid_v1",
    "piece_cid_v2",
    "piece_info_from_v2",
    "piece_proof",
    "piece_root_from_v1",
    "tree_layers",
    "unpadded_size",
    "v1_to_v2",
    "v2_to_v1",
    "verify_inclusion",
    "write_car",
    "zero_root",
]
