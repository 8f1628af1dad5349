"""Names of the MQTT 5 CONNACK reason codes (OASIS MQTT 5.0, section 3.2.2.2), for messages."""

from __future__ import annotations

from gateway.ingest.mqtt_codec import ConnAck

__all__ = ["connack_reason"]

_NAMES = {
    0x80: "Unspecified error",
    0x81: "Malformed Packet",
    0x82: "Protocol Error",
    0x83: "Implementation specific error",
    0x84: "Unsupported Protocol Version",
    0x85: "Client Identifier not valid",
    0x86: "Bad User Name or Password",
    0x87: "Not authorized",
    0x88: "Server unavailable",
    0x89: "Server busy",
    0x8A: "Banned",
    0x8C: "Bad authentication method",
    0x90: "Topic Name invalid",
    0x95: "Packet too large",
    0x97: "Quota exceeded",
    0x99: "Payload format invalid",
    0x9A: "Retain not supported",
    0x9B: "QoS not supported",
    0x9C: "Use another server",
    0x9D: "Server moved",
    0x9F: "Connection rate exceeded",
}


def connack_reason(connack: ConnAck) -> str:
    """``Not authorized`` (and the broker's reason string, if it sent one)."""
    name = _NAMES.get(connack.reason, f"reason code {connack.reason:#04x}")
    return f"{name} ({connack.reason_string})" if connack.reason_string else name
