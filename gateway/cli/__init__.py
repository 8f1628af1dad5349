"""argv -> one command (depin-gateway ...), and the demo."""

from gateway.cli.app import *  # noqa: F403 (the stage's public names)
from gateway.cli.app import __all__ as __all__
