"""Import eth-account without letting it change the interpreter's recursion limit.

py_ecc, which eth-account imports through eth-keyfile, calls ``sys.setrecursionlimit(100000)``
at import time (py_ecc ``__init__.py``). With that limit, C-level recursion such as
``json.loads`` of a deeply nested document no longer stops at a RecursionError: it overflows the
C stack and the whole process dies with SIGSEGV (seen here with Python 3.11). A gateway process
parses JSON from nodes, sensors and HTTP clients, so the limit is put back right after the
import; secp256k1 signing and EIP-712 hashing do not need it (py_ecc's BLS code is unused).
"""

from __future__ import annotations

import sys

__all__ = ["load_eth_account"]


def load_eth_account() -> None:
    """Import ``eth_account`` (and its messages module) once, keeping the recursion limit."""
    if "eth_account.messages" in sys.modules:
        return
    limit = sys.getrecursionlimit()
    try:
        import eth_account
        import eth_account.messages
    finally:
        sys.setrecursionlimit(limit)
    del eth_account
