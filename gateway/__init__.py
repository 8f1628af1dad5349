"""depin-gateway: durable sensor ingest, sealed batches, Filecoin pieces, deals, proofs."""

__version__ = "0.1.0"
__all__ = ["__version__"]
