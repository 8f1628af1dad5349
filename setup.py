"""Build hook for the optional commP C extension; all other metadata lives in pyproject.toml.

``gateway.piece._commp_native`` links OpenSSL's libcrypto (Debian: ``libssl-dev``). It is
``optional``: without a compiler or the headers the install still succeeds and
``gateway.piece`` falls back to its pure-Python commP. ``DEPIN_GATEWAY_PURE=1`` leaves it out on
purpose: the arm64 .deb is built on amd64, where a host-compiled extension would be the wrong
architecture (debian/build-deb.sh).
"""

import os

from setuptools import Extension, setup

setup(
    ext_modules=[] if os.environ.get("DEPIN_GATEWAY_PURE") == "1" else [
        Extension(
            "gateway.piece._commp_native",
            sources=["gateway/piece/_commp_native.c"],
            libraries=["crypto"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
