"""The state store (SQLAlchemy Core, one metadata): outbox, delivery ledger, sync snapshots, leases, rate-limit
buckets, settings history and resync requests."""
