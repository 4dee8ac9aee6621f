"""Tables of the state store (SQLAlchemy Core), identical on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)

rate_limits = sa.Table(
    "ap_rate_limits",
    metadata,
    sa.Column("bucket", sa.String(200), primary_key=True),
    sa.Column("next_slot", sa.Double(), nullable=False, comment="epoch seconds of the next free send slot"),
    sa.Column("updated_at", sa.Double(), nullable=False),
)

destination_leases = sa.Table(
    "ap_destination_leases",
    metadata,
    sa.Column("destination_id", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer(), nullable=False),
    sa.Column("expires_at", sa.Double(), nullable=False),
)

sync_runs = sa.Table(
    "ap_sync_runs",
    metadata,
    sa.Column("sync_id", sa.String(100), primary_key=True),
    sa.Column("destination_id", sa.String(100), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", _TS, nullable=False),
    sa.Column("finished_at", _TS),
    sa.Column("metrics", sa.JSON()),
)

outbox = sa.Table(
    "ap_outbox",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("destination_id", sa.String(100), nullable=False),
    sa.Column("record_id", sa.String(100), nullable=False),
    sa.Column("connection_id", sa.String(200), nullable=False),
    sa.Column("change_id", sa.String(100), nullable=False),
    sa.Column("subject_key", sa.String(300), nullable=False),
    sa.Column("profile_id", sa.String(300), nullable=False),
    sa.Column("operation", sa.String(20), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("snapshot_value", sa.JSON(), comment="what the snapshot holds once the change is acknowledged"),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("batch_id", sa.String(64)),
    sa.Column("sync_id", sa.String(100), nullable=False),
    sa.Column("reason", sa.Text()),
    sa.Column("staged_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    sa.UniqueConstraint("destination_id", "record_id", name="uq_ap_outbox_record"),
    sa.Index("ix_ap_outbox_queue", "destination_id", "status", "id"),
    sa.Index("ix_ap_outbox_change", "destination_id", "change_id"),
)

batches = sa.Table(
    "ap_batches",
    metadata,
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("destination_id", sa.String(100), nullable=False),
    sa.Column("sync_id", sa.String(100), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("record_count", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", _TS, nullable=False),
    sa.Column("finished_at", _TS),
    sa.Column("metrics", sa.JSON()),
)

delivery_ledger = sa.Table(
    "ap_delivery_ledger",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("destination_id", sa.String(100), nullable=False),
    sa.Column("connection_id", sa.String(200), nullable=False),
    sa.Column("record_id", sa.String(100), nullable=False),
    sa.Column("profile_id", sa.String(300), nullable=False),
    sa.Column("batch_id", sa.String(64), nullable=False),
    sa.Column("sync_id", sa.String(100), nullable=False),
    sa.Column("operation", sa.String(20), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("sent_at", _TS, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text()),
    sa.Column("sent", sa.JSON(), comment="what was sent (holds personal data; see README)"),
    sa.Column("response", sa.JSON()),
    sa.Index("ix_ap_ledger_profile", "destination_id", "profile_id"),
    sa.Index("ix_ap_ledger_record", "destination_id", "record_id"),
)

ledger_keys = sa.Table(
    "ap_ledger_keys",
    metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True, comment="sha256 of a normalised identifier"),
    sa.Column("destination_id", sa.String(100), primary_key=True),
    sa.Column("profile_id", sa.String(300), primary_key=True),
)

sync_snapshots = sa.Table(
    "ap_sync_snapshots",
    metadata,
    sa.Column("connection_id", sa.String(200), primary_key=True),
    sa.Column("subject_key", sa.String(300), primary_key=True),
    sa.Column("destination_id", sa.String(100), nullable=False),
    sa.Column("value", sa.JSON(), comment="membership (true/false) or the last acknowledged trait value"),
    sa.Column("change_id", sa.String(100), nullable=False),
    sa.Column("sync_id", sa.String(100), nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    sa.Index("ix_ap_snapshots_destination", "destination_id"),
)

run_settings = sa.Table(
    "run_settings",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("workspace_text", sa.Text, nullable=False),
    sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
)

resync_requests = sa.Table(
    "resync_requests",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("connection_id", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("requested_by", sa.String(200), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Index("ix_resync_requests_status", "status", "seq"),
)

settings_history = sa.Table(
    "settings_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("connection_id", sa.String(200), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("settings", sa.Text, nullable=True),
    sa.Column("diff", sa.Text, nullable=False),
    sa.Index("ix_settings_history_connection", "workspace", "connection_id", "id"),
)

initialised_connections = sa.Table(
    "sync_initialised_connections",
    metadata,
    sa.Column("connection_id", sa.String(200), primary_key=True),
    sa.Column("destination_id", sa.String(100), nullable=False),
    sa.Column("initialised_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("how", sa.String(16), nullable=False, comment="backfill, or baseline (no historical data)"),
)

destination_memory = sa.Table(
    "ap_destination_memory",
    metadata,
    sa.Column("destination_id", sa.String(100), primary_key=True),
    sa.Column("connection_id", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column(
        "value", sa.Text, nullable=False, comment="platform ids only (e.g. a Meta audience id), no PII"
    ),
    sa.Column("updated_at", _TS, nullable=False),
)
