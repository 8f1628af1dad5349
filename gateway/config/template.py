"""The commented config that ``depin-gateway init`` writes."""

from __future__ import annotations

from gateway.config.table import toml_string

__all__ = ["render_config"]

_TEMPLATE = """\
# depin-gateway configuration (TOML). Durations: "250ms", "60s", "5m". Sizes: "64KiB", "512MiB".
# Every key is validated at start; an error names the key, its allowed range and the fix.

[gateway]
id = {gateway_id}                  # appears in MQTT topics and heartbeats: letters, digits, - and _
state_dir = {state_dir}            # spool, vault, keys (identity.key is created here, mode 0600)
disk_budget = "512MiB"             # spool + quarantine + sealed batches must fit in this
high_watermark = 0.95              # at this fraction of the budget, stop acking (backpressure)
low_watermark = 0.85               # ... and resume below this one

[spool]
segment_size = "16MiB"             # write-ahead log segment files
commit_interval = "10ms"           # 0s..10s: at most this long between a reading and its fsync
commit_max_readings = 2000         # ... or this many readings, whichever comes first
dedup_window = 100000              # remembered message keys for exactly-once (see README)

[mqtt]
enabled = true
host = "127.0.0.1"
port = {mqtt_port}
# client_id = "depin-gateway-{raw_id}"   # fixed, so the broker keeps our persistent session
topics = [{{ filter = "sensors/#", format = "json" }}]  # format: any | utf8 | json
qos = 1                            # 2: PUBREC only once durable (README, "MQTT details")
session_expiry = "7d"              # how long the broker keeps our queue while we are down (>= 60s)
receive_maximum = 1000             # MQTT 5 in-flight window, 1..65535; too small, throughput drops
max_payload = "256KiB"             # larger messages are quarantined (and acked)
quarantine_size = "16MiB"          # bounded store of rejected messages
# username = "gateway"
# password_file = "/etc/depin-gateway/mqtt.password"
# tls = true
# ca_file = "/etc/ssl/certs/ca-certificates.crt"

# [[serial]]
# name = "pm"
# port = "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"   # stable path or a glob
# driver = "pms5003"               # see: depin-gateway drivers list
# baudrate = 9600
# options = {{ mode = "passive", interval = "5" }}

[batch]
max_readings = 10000
max_bytes = "4MiB"
max_age = "5m"
zstd_level = 19                    # sealing runs in a worker: ~50 ms more per 10k readings than 9
time_resolution = "1us"            # receive times in sealed batches (restore prints microseconds)
codec = "readings-cbor-v2"         # v2: JSON split into value columns (~1.7x smaller than
                                   # v1 at 10k readings, ~60x more CPU); v1: fast, less compact

[owner]
# X25519 public keys that can decrypt sealed batches (depin-gateway owner-key --out owner.key)
public_keys = [{owner_keys}]

[storage]
nodes = []                         # storage node URLs, e.g. "http://127.0.0.1:8900"
data_fragments = 4                 # k: any k fragments restore a batch
parity_fragments = 2               # m: fragments that may be lost
deal_duration = "180d"
max_price = 1000000000000          # attoFIL per GiB per epoch
budget = 1000000000000000000       # attoFIL in total (1 FIL)

[proving]
interval = "1h"
challenges = 5

[status]
listen = "127.0.0.1:8787"

[fleet]
# broker = "mqtt://fleet.example.net:1883"
heartbeat_interval = "60s"
"""


def render_config(
    gateway_id: str, state_dir: str, owner_keys: list[str], mqtt_port: int = 1883
) -> str:
    keys = ", ".join(toml_string(key) for key in owner_keys)
    return _TEMPLATE.format(
        gateway_id=toml_string(gateway_id),
        raw_id=gateway_id,  # only in a comment; init has checked it is letters, digits, - and _
        state_dir=toml_string(state_dir),
        owner_keys=keys,
        mqtt_port=mqtt_port,
    )
