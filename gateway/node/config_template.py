"""The commented ``[node]`` file ``node init`` writes (``config.render_node_config`` fills it)."""

__all__ = ["NODE_TEMPLATE"]

NODE_TEMPLATE = """\
# depin-gateway storage node. Docs: gateway/node/API.md and README "Running a storage node".
# Sizes like "10GiB", durations like "5m" / "540d". Amounts are integer attoFIL.

[node]
# Where the HTTP API listens. Keep it on loopback behind a reverse proxy, or open it on purpose.
listen = {listen}
# The URL clients reach this node at (goes into the signed ask). Default: http://<listen>.
# public_url = "https://node.example.org"
# Pieces, deal records and the node identity key live here.
data_dir = {data_dir}
# The provider identity (Ed25519, mode 0600, created by `node init`, never overwritten).
identity = "node.key"
# Disk space offered to clients (padded piece bytes).
capacity = "10GiB"
# Price in attoFIL per GiB (padded) per epoch (30 s).
price = 1000000
# Padded piece sizes accepted (powers of two).
min_piece_size = "128B"
max_piece_size = "64MiB"
# Deal durations accepted, and how far ahead a deal may start (its upload deadline).
min_duration = "1h"
max_duration = "540d"
max_start_delay = "7d"
# Accepted deals per client still waiting for their upload (they reserve space).
max_pending_deals = 64
# Announce the signed ask, retained, on the fleet broker (optional).
# fleet_broker = "mqtt://127.0.0.1:1883"
# provider_id = "my-node"          # default: first 16 hex digits of the provider key
announce_interval = "5m"
ask_ttl = "1h"
# How often expired deals are garbage-collected.
gc_interval = "5m"
# Allowed clock difference for signed requests.
max_skew = "300s"
# Leaves per proof request.
max_prove_leaves = 64
# Per-client limits: requests per second (and burst), upload bytes per second (and burst).
rate_requests = 50
rate_burst = 200
upload_rate = "64MiB"
upload_burst = "128MiB"
# Reservations (API.md "Capacity under abuse"): an accepted deal's space is held this long
# waiting for its upload unless vouchers pay for it; caps per key, per address, and unpaid in all.
reservation_ttl = "10m"
# max_reserved_per_client = "1GiB"
# max_reserved_per_address = "2GiB"
# max_unpaid_reserved = "5GiB"     # default: half of capacity
# An active deal whose vouchers lag its price by more than this is ended.
payment_grace = "3d"
# Connections: a request head must arrive within header_timeout of connecting (or of the previous
# response), body bytes within body_timeout; at most max_connections (fitted to LimitNOFILE).
header_timeout = "10s"
body_timeout = "30s"
max_connections = 512
# Uploads without a deal (the Curio PDP flows, "public" callers): deleted when no deal or data set
# claims them within unclaimed_keep (Curio: 2 h); their bytes are capped node-wide and per address.
unclaimed_keep = "2h"
# max_unclaimed = "2.5GiB"          # default: a quarter of capacity
# max_unclaimed_per_address = "1GiB"
# A FOC provider: the chain the data-set routes (/pdp/data-sets...) send transactions to.
# Without these keys those routes answer 501 (a node that only stores and serves pieces).
# chain_rpc = "http://127.0.0.1:8545"
# chain_id = 31415926              # optional; checked against eth_chainId at start
# pdp_verifier = "0x..."
# wallet = "wallet.key"            # secp256k1 key file (depin-gateway wallet init), pays gas
# record_keepers = ["0x..."]       # the recordKeeper contracts clients may name (FWSS proxy)
"""
