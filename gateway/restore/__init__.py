"""Readers: any k fragments -> decrypt -> check the chain -> JSON lines (local, network)."""

from gateway.restore.jsonl import *  # noqa: F403 (the stage's public names)
from gateway.restore.jsonl import __all__ as __all__
