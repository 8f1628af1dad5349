"""The write-ahead spool: readings are durable here before any source is acknowledged."""

from gateway.spool.reader import SpoolReader
from gateway.spool.record import decode_body, encode_record, scan
from gateway.spool.wal import Spool, SpoolStats

__all__ = [
    "Spool",
    "SpoolReader",
    "SpoolStats",
    "decode_body",
    "encode_record",
    "scan",
]
