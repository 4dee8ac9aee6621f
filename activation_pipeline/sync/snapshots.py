"""Snapshot bookkeeping the sync layer adds to the state store: first syncs, merges, baselines."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from activation_pipeline.state.schema import sync_snapshots
from activation_pipeline.state.store import StateStore

_metadata = sa.MetaData()

initialised_connections = sa.Table(
    "sync_initialised_connections",
    _metadata,
    sa.Column("connection_id", sa.String(200), primary_key=True),
    sa.Column("destination_id", sa.String(100), nullable=False),
    sa.Column("initialised_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("how", sa.String(16), nullable=False, comment="backfill, or baseline (no historical data)"),
)


def _ensure_table(store: StateStore) -> None:
    with store.engine.begin() as connection:
        _metadata.create_all(connection, checkfirst=True)


def is_initialised(store: StateStore, connection_id: str) -> bool:
    """Whether the connection's first sync (backfill or baseline) has happened."""
    _ensure_table(store)
    with store.read() as connection:
        found = connection.execute(
            sa.select(initialised_connections.c.connection_id).where(
                initialised_connections.c.connection_id == connection_id
            )
        ).first()
    return found is not None


def mark_initialised(store: StateStore, connection_id: str, destination_id: str, how: str) -> None:
    """Remember that the connection's first sync has been done."""
    _ensure_table(store)
    with store.write() as connection:
        connection.execute(
            store.insert(initialised_connections)
            .values(
                connection_id=connection_id,
                destination_id=destination_id,
                initialised_at=datetime.now(UTC),
                how=how,
            )
            .on_conflict_do_nothing(index_elements=["connection_id"])
        )


def baseline(
    store: StateStore, connection_id: str, destination_id: str, values: Mapping[str, Any], sync_id: str
) -> None:
    """Record `values` as what the destination holds without sending them (destinations that take no history)."""
    now = datetime.now(UTC)
    rows = [
        {
            "connection_id": connection_id,
            "subject_key": subject,
            "destination_id": destination_id,
            "value": value,
            "change_id": f"baseline:{sync_id}",
            "sync_id": sync_id,
            "updated_at": now,
        }
        for subject, value in values.items()
    ]
    with store.write() as connection:
        for start in range(0, len(rows), 5000):
            statement = store.insert(sync_snapshots).values(rows[start : start + 5000])
            connection.execute(
                statement.on_conflict_do_nothing(index_elements=["connection_id", "subject_key"])
            )


def rekey_merged(store: StateStore, connection_id: str, aliases: Mapping[str, str]) -> int:
    """Move snapshot rows of merged-away profiles to the profile they merged into.

    A merged profile that stays a member is therefore not "entered" again nor "exited". When both the old and
    the surviving profile have a row, the surviving one's is kept. Returns how many rows moved or went.
    """
    if not aliases:
        return 0
    t = sync_snapshots
    with store.write() as connection:
        held = {
            row.subject_key
            for row in connection.execute(
                sa.select(t.c.subject_key).where(t.c.connection_id == connection_id)
            )
        }
        changed = 0
        for old, new in aliases.items():
            if old not in held or old == new:
                continue
            where = (t.c.connection_id == connection_id) & (t.c.subject_key == old)
            if new in held:
                connection.execute(sa.delete(t).where(where))
            else:
                connection.execute(sa.update(t).where(where).values(subject_key=new))
                held.add(new)
            held.discard(old)
            changed += 1
    return changed
