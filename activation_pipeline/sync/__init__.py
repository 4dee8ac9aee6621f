"""Sync orchestration: what each connection must send (backfill, deltas, resync), and sending it."""
