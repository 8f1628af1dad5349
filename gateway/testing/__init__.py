"""Real peers on loopback for tests and the demo: broker, nodes, devnet, sensors."""
