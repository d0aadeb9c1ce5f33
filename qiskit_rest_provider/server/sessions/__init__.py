"""Runtime sessions and batches (protocol §3.10)."""
