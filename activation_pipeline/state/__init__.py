"""The state store: outbox, delivery ledger, sync snapshots, leases and rate-limit buckets (SQLAlchemy Core)."""
