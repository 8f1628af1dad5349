"""The running gateway: wiring of every stage, and the status HTTP server."""

from gateway.daemon.wiring import *  # noqa: F403 (the stage's public names)
from gateway.daemon.wiring import __all__ as __all__
