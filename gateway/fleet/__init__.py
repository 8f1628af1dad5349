"""Fleet: signed, retained heartbeats on the fleet broker and the tools that read them.

The daemon's ``HeartbeatPublisher`` (heartbeat.py) publishes to depin/v1/gateways/<id>/status
(retained, QoS 1, last will = signed "offline"); ``depin-gateway fleet`` collects those
(collect.py) and classifies and renders them (view.py, pure).
"""

from gateway.fleet.heartbeat import (
    HEARTBEAT_KIND,
    STATUS_WILDCARD,
    HeartbeatPublisher,
    heartbeat_body,
    offline_body,
    status_topic,
)
from gateway.fleet.view import FleetEntry, classify, render_table

__all__ = [
    "HEARTBEAT_KIND",
    "STATUS_WILDCARD",
    "FleetEntry",
    "HeartbeatPublisher",
    "classify",
    "heartbeat_body",
    "offline_body",
    "render_table",
    "status_topic",
]
