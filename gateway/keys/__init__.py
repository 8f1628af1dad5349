"""Key material: the gateway identity and its rotation, owner keys, the EVM wallet."""

from gateway.keys.files import *  # noqa: F403 (the stage's public names)
from gateway.keys.files import __all__ as __all__
