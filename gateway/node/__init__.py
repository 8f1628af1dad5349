"""The storage node: stores pieces, makes signed deals, proves possession, earns vouchers.

HTTP API (exact wire formats): ``gateway/node/API.md``. Modules, one concept each:
``config`` ([node] TOML; ``config_template``), ``deals`` (records + lifecycle table, pure),
``policy`` (deal terms, pure), ``reservations`` and ``unclaimed`` (who holds space, for how long;
pure), ``dataset_wire`` (Curio data-set shapes and transaction records, pure), ``chainport`` (the
chain as a ``Protocol``; ``testing_chain`` fakes it for route tests), ``ranges``, ``bodies``
(bounded JSON) and ``ratelimit`` (pure), ``store`` (disk), ``replaylog`` (the replay cache on
disk), ``prooftree`` (Merkle proofs), ``service`` (state and operations) with ``auth``,
``pieces``, ``public`` (uploads without a deal), ``datasets`` and ``lifecycle``, ``server``
(middleware and app) with ``http_common`` and the routes by area (``routes_pieces``,
``routes_datasets``, ``routes_market``), ``connections`` (connection cap and timeouts),
``quietlog`` (rate-limited logs), ``status``, ``announce`` (MQTT), ``runner`` (start/stop),
``cli`` (``node init`` / ``node run``).
"""

from gateway.node.cli import node_init_main, node_run_main
from gateway.node.config import (
    NodeConfig,
    load_node_config,
    node_config_from_string,
    render_node_config,
)
from gateway.node.runner import NodeThread, RunningNode, serve, start_node

__all__ = [
    "NodeConfig",
    "NodeThread",
    "RunningNode",
    "load_node_config",
    "node_config_from_string",
    "node_init_main",
    "node_run_main",
    "render_node_config",
    "serve",
    "start_node",
]
