"""Filecoin Onchain Cloud client: FWSS EIP-712 signatures and the extraData they travel in."""
