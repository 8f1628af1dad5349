"""Datasets for AI training: Parquet + Croissant from the sealed ledger, with signed provenance.

Nothing here imports pyarrow at module level: the package is importable on a Pi without the
``dataset`` extra, and only ``export`` / ``verify`` need it (``gateway.dataset.cli`` checks first).
"""
