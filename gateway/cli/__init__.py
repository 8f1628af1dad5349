"""argv -> one command (depin-gateway ...), and the demo."""

from gateway.cli.main import *  # noqa: F403 (the stage's public names)
from gateway.cli.main import __all__ as __all__
