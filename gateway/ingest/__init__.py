"""Sources of readings: MQTT and serial adapters feeding the ingest sink."""
