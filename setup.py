"""Build hook for the optional commP C extension; all other metadata lives in pyproject.toml.

``gateway.piece._commp_native`` links OpenSSL's libcrypto (Debian: ``libssl-dev``). It is
``optional``: without a compiler or the headers the install still succeeds and
``gateway.piece`` falls back to its pure-Python commP.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gateway.piece._commp_native",
            sources=["gateway/piece/_commp_native.c"],
            libraries=["crypto"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
