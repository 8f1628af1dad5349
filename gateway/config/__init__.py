"""TOML -> a frozen, validated Config (one line per mistake, naming the key)."""

from gateway.config.load import *  # noqa: F403 (the stage's public names)
from gateway.config.load import __all__ as __all__
