"""The gateway's storage client: discovery, deals, uploads, proving, repair, ledger to the network.

Pure cores (no I/O): ``placement`` (state machine), ``book`` (state from ledger events),
``budget`` (FIL accounting), ``selection``, ``reputation``, ``discovery`` (ask verification),
``proving`` and ``rangeproof`` (proof checks), ``repair`` (rebuild fragments), ``snapshot``
(the ledger snapshot CAR), ``throttle`` (token bucket, backoff). Thin adapters: ``eventlog``
(the on-disk ledger), ``local`` (local copies), ``client`` (aiohttp), ``fleet`` (MQTT asks),
``engine`` (per-placement network work) and ``service`` (the ``StorageService`` thread).
``restore --from-network`` is a reader: it lives in ``gateway.restore.network``.
"""

from gateway.deals.service import StorageService

__all__ = ["StorageService"]
