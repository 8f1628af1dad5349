"""Sensor protocol drivers: one module per protocol, registered by name in ``drivers.registry``."""

from drivers.base import Driver, FrameBad, FrameEvent, FrameOk, Measurement
from drivers.registry import create, names

__all__ = ["Driver", "FrameBad", "FrameEvent", "FrameOk", "Measurement", "create", "names"]
