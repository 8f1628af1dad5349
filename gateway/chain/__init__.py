"""EVM chain access for FOC and FEVM: network presets, a JSON-RPC client and the wallet key."""
