"""Sync snapshots: what each connection's destination holds after its acknowledged syncs.

Everything about snapshots is here: reading them (whole, or streamed in key order and in chunks), following
profile merges, first syncs (backfill or silent baseline), and advancing them as records are acknowledged.
Keys are compared in binary (code point) order on every engine, the order Python and DuckDB sort text in.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import sqlalchemy as sa

from activation_pipeline.state.schema import initialised_connections, outbox, sync_snapshots
from activation_pipeline.state.store import StateStore

CHUNK = 5_000

Moves = Mapping[str, str | None]
"""Merged-away subject -> the subject its row moves to, or None when the survivor's own row wins."""


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to `size` items, in order."""
    iterator = iter(items)
    while part := list(islice(iterator, size)):
        yield part


def _binary(store: StateStore, column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    return column.collate("C") if store.dialect == "postgresql" else column


def read_snapshot(store: StateStore, connection_id: str) -> dict[str, Any]:
    """A connection's whole sync snapshot: subject key -> membership or last acknowledged trait value."""
    return dict(snapshot_rows(store, connection_id))


def snapshot_rows(
    store: StateStore, connection_id: str, moves: Moves | None = None, chunk: int = CHUNK
) -> Iterator[tuple[str, Any]]:
    """The snapshot's (subject, value) rows in key order, read `chunk` rows at a time.

    `moves` (from `merge_moves`) are applied on the way, for dry runs that must not write them."""
    moves = moves or {}
    key = _binary(store, sync_snapshots.c.subject_key)

    def stored() -> Iterator[tuple[str, Any]]:
        after: str | None = None
        while True:
            query = (
                sa.select(sync_snapshots.c.subject_key, sync_snapshots.c.value)
                .where(sync_snapshots.c.connection_id == connection_id)
                .order_by(key)
                .limit(chunk)
            )
            if after is not None:
                query = query.where(key > after)
            with store.read() as connection:
                rows = [(row.subject_key, row.value) for row in connection.execute(query)]
            yield from ((s, v) for s, v in rows if s not in moves)
            if len(rows) < chunk:
                return
            after = rows[-1][0]

    if not moves:
        yield from stored()
        return
    moved = sorted(
        (new, value)
        for old, value in snapshot_values(store, connection_id, list(moves)).items()
        if (new := moves[old]) is not None
    )
    yield from heapq.merge(stored(), moved, key=lambda row: row[0])


def snapshot_values(store: StateStore, connection_id: str, subjects: Sequence[str]) -> dict[str, Any]:
    """The snapshot values of some subjects of a connection (those it holds)."""
    found: dict[str, Any] = {}
    with store.read() as connection:
        found.update(held_values(connection, connection_id, subjects))
    return found


def held_values(connection: sa.Connection, connection_id: str, subjects: Sequence[str]) -> dict[str, Any]:
    """The snapshot values of some subjects, inside an open transaction."""
    found: dict[str, Any] = {}
    for part in chunked(sorted(set(subjects)), 500):
        rows = connection.execute(
            sa.select(sync_snapshots.c.subject_key, sync_snapshots.c.value).where(
                sync_snapshots.c.connection_id == connection_id, sync_snapshots.c.subject_key.in_(part)
            )
        )
        found.update({row.subject_key: row.value for row in rows})
    return found


def merge_moves(store: StateStore, connection_id: str, aliases: Mapping[str, str]) -> dict[str, str | None]:
    """How merges move the snapshot: each held merged-away subject goes to its survivor, unless the survivor
    has a row already (then the survivor's is kept and the old one goes)."""
    pairs = [(old, new) for old, new in aliases.items() if old != new]
    held = set(snapshot_values(store, connection_id, [k for pair in pairs for k in pair]))
    moves: dict[str, str | None] = {}
    for old, new in pairs:
        if old not in held:
            continue
        moves[old] = None if new in held else new
        held.add(new)
        held.discard(old)
    return moves


def rekey_merged(store: StateStore, connection_id: str, aliases: Mapping[str, str]) -> int:
    """Move snapshot rows of merged-away profiles to the profile they merged into; returns how many moved.

    A merged profile that stays a member is therefore not "entered" again nor "exited"."""
    moves = merge_moves(store, connection_id, aliases)
    t = sync_snapshots
    with store.write() as connection:
        for old, new in moves.items():
            where = (t.c.connection_id == connection_id) & (t.c.subject_key == old)
            if new is None:
                connection.execute(sa.delete(t).where(where))
            else:
                connection.execute(sa.update(t).where(where).values(subject_key=new))
    return len(moves)


def is_initialised(store: StateStore, connection_id: str) -> bool:
    """Whether the connection's first sync (backfill or baseline) has happened."""
    with store.read() as connection:
        found = connection.execute(
            sa.select(initialised_connections.c.connection_id).where(
                initialised_connections.c.connection_id == connection_id
            )
        ).first()
    return found is not None


def mark_initialised(store: StateStore, connection_id: str, destination_id: str, how: str) -> None:
    """Remember that the connection's first sync has been done."""
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
    store: StateStore,
    connection_id: str,
    destination_id: str,
    values: Iterable[tuple[str, Any]],
    sync_id: str,
) -> int:
    """Record (subject, value) pairs as what the destination holds without sending them (destinations that
    take no history), in chunks; returns how many."""
    now = datetime.now(UTC)
    count = 0
    for part in chunked(values, CHUNK):
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
            for subject, value in part
        ]
        statement = store.insert(sync_snapshots).on_conflict_do_nothing(
            index_elements=["connection_id", "subject_key"]
        )
        with store.write() as connection:
            connection.execute(statement, rows)
        count += len(rows)
    return count


def advance_snapshots(
    store: StateStore,
    connection: sa.Connection,
    destination_id: str,
    sync_id: str,
    change_ids: Sequence[str],
    now: datetime,
    acknowledged: str,
) -> None:
    """Upsert the snapshot of each change whose outbox records all have the `acknowledged` status."""
    rows_by_change: dict[str, list[Any]] = {}
    for part in chunked(change_ids, 500):
        rows = connection.execute(
            sa.select(
                outbox.c.change_id,
                outbox.c.connection_id,
                outbox.c.subject_key,
                outbox.c.snapshot_value,
                outbox.c.status,
            )
            .where(outbox.c.destination_id == destination_id, outbox.c.change_id.in_(part))
            .order_by(outbox.c.id)
        )
        for row in rows:
            rows_by_change.setdefault(row.change_id, []).append(row)
    values = [
        {
            "connection_id": rows[0].connection_id,
            "subject_key": rows[0].subject_key,
            "destination_id": destination_id,
            "value": rows[0].snapshot_value,
            "change_id": change,
            "sync_id": sync_id,
            "updated_at": now,
        }
        for change, rows in rows_by_change.items()
        if all(row.status == acknowledged for row in rows)
    ]
    if values:
        statement = store.insert(sync_snapshots)
        statement = statement.on_conflict_do_update(
            index_elements=["connection_id", "subject_key"],
            set_={
                k: statement.excluded[k]
                for k in ("destination_id", "value", "change_id", "sync_id", "updated_at")
            },
        )
        connection.execute(statement, values)


def held_since(
    store: StateStore, connection_id: str, before: datetime, chunk: int = CHUNK
) -> Iterator[tuple[str, datetime]]:
    """(subject, last acknowledged at) of the members a connection holds whose snapshot row was last
    acknowledged before `before`, in key order (membership upkeep: who is due to be sent again)."""
    key = _binary(store, sync_snapshots.c.subject_key)
    after: str | None = None
    while True:
        query = (
            sa.select(sync_snapshots.c.subject_key, sync_snapshots.c.updated_at, sync_snapshots.c.value)
            .where(sync_snapshots.c.connection_id == connection_id, sync_snapshots.c.updated_at < before)
            .order_by(key)
            .limit(chunk)
        )
        if after is not None:
            query = query.where(key > after)
        with store.read() as connection:
            rows = list(connection.execute(query))
        for row in rows:
            if row.value is True:
                at = row.updated_at
                yield row.subject_key, at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        if len(rows) < chunk:
            return
        after = rows[-1].subject_key
