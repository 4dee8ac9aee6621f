"""The outbox: records staged before sending, claimed in batches, acknowledged or failed per record.

Statuses: `pending` (to send), `in_flight` (claimed by a batch whose result is not recorded yet),
`acknowledged`, `failed` (permanent; sent again only when staged again), `retry` (transient, retries
exhausted; sent again by the next run). Completing a batch writes the ledger and advances the sync snapshot
of every change whose records are all acknowledged (`snapshots.advance_snapshots`), in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from activation_pipeline.activation.ids import same_value
from activation_pipeline.destinations.base import Operation, OutboundRecord, Outcome, RecordResult
from activation_pipeline.state.json_values import storable, unsendable
from activation_pipeline.state.redaction import stored_answer, stored_reason
from activation_pipeline.state.schema import batches, delivery_ledger, ledger_keys, outbox
from activation_pipeline.state.snapshots import advance_snapshots, chunked, held_values
from activation_pipeline.state.store import StateStore

PENDING = "pending"
IN_FLIGHT = "in_flight"
ACKNOWLEDGED = Outcome.ACKNOWLEDGED.value
FAILED = Outcome.FAILED.value
RETRY = Outcome.RETRY.value

CHUNK = 500


@dataclass(frozen=True)
class StagedRecord:
    """A record to stage with the change it belongs to and what the snapshot becomes once it is done."""

    record: OutboundRecord
    connection_id: str
    change_id: str
    subject_key: str
    snapshot_value: Any
    lookup_keys: tuple[str, ...] = ()
    resend: bool = False
    """Staged even when the snapshot already reflects it (membership refresh of list destinations)."""


@dataclass(frozen=True)
class StageCounts:
    """What staging did."""

    staged: int = 0
    requeued: int = 0
    already_acknowledged: int = 0
    already_queued: int = 0
    already_in_snapshot: int = 0
    refused: int = 0
    """Records JSON cannot carry (a NaN or infinite number): failed at once, never sent."""

    def __add__(self, other: StageCounts) -> StageCounts:
        """Counts of two stagings together."""
        return StageCounts(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


@dataclass(frozen=True)
class ClaimedRecord:
    """A record claimed into a batch."""

    row_id: int
    record: OutboundRecord
    connection_id: str
    change_id: str
    attempt: int


def stage(
    store: StateStore,
    connection: sa.Connection,
    destination_id: str,
    sync_id: str,
    items: Iterable[StagedRecord],
    now: datetime,
    *,
    resend: bool = False,
) -> StageCounts:
    """Put records in the outbox: new ones pending, failed/retry ones back to pending, acknowledged skipped.

    A change the connection's snapshot already reflects (its value equals the change's) is not staged,
    unless `resend` (a resync sends every current member again with today's settings).
    """
    unique: dict[str, StagedRecord] = {}
    for item in items:
        unique.setdefault(item.record.record_id, item)
    refused = _refuse_unsendable(connection, destination_id, sync_id, unique.values(), now)
    by_connection: dict[str, set[str]] = {}
    for item in unique.values():
        by_connection.setdefault(item.connection_id, set()).add(item.subject_key)
    reflected = 0
    candidates: list[StagedRecord] = []
    snapshots = {
        cid: held_values(connection, cid, sorted(subjects)) for cid, subjects in by_connection.items()
    }
    for item in unique.values():
        if item.record.record_id in refused:
            continue
        snapshot = snapshots[item.connection_id]
        if (
            not resend
            and not item.resend
            and item.subject_key in snapshot
            and same_value(snapshot[item.subject_key], item.snapshot_value)
        ):
            reflected += 1
        else:
            candidates.append(item)
    existing: dict[str, str] = {}
    ids = [c.record.record_id for c in candidates]
    for part in chunked(ids, CHUNK):
        rows = connection.execute(
            sa.select(outbox.c.record_id, outbox.c.status).where(
                outbox.c.destination_id == destination_id, outbox.c.record_id.in_(part)
            )
        )
        existing.update({row.record_id: row.status for row in rows})
    inserts: list[dict[str, Any]] = []
    requeue: list[str] = []
    acknowledged = queued = 0
    for item in candidates:
        status = existing.get(item.record.record_id)
        if status is None:
            inserts.append(_outbox_row(destination_id, sync_id, item, now))
        elif status == ACKNOWLEDGED:
            acknowledged += 1
        elif status in (FAILED, RETRY):
            requeue.append(item.record.record_id)
        else:
            queued += 1
    if inserts:
        connection.execute(sa.insert(outbox), inserts)
    for part in chunked(requeue, CHUNK):
        connection.execute(
            sa.update(outbox)
            .where(outbox.c.destination_id == destination_id, outbox.c.record_id.in_(part))
            .values(status=PENDING, reason=None, sync_id=sync_id, updated_at=now)
        )
    keys = {(key, item.record.profile_id) for item in unique.values() for key in item.lookup_keys}
    if keys:
        statement = store.insert(ledger_keys).on_conflict_do_nothing()
        key_rows = [
            {"key_hash": k, "destination_id": destination_id, "profile_id": p} for k, p in sorted(keys)
        ]
        for part in chunked(key_rows, CHUNK):
            connection.execute(statement, list(part))
    return StageCounts(len(inserts), len(requeue), acknowledged, queued, reflected, len(refused))


def _refuse_unsendable(
    connection: sa.Connection, destination_id: str, sync_id: str, items: Iterable[StagedRecord], now: datetime
) -> set[str]:
    """Fail the records JSON cannot carry, with the reason, in the outbox and the ledger; their ids."""
    refused = [(item, reason) for item in items if (reason := unsendable(item.record.payload)) is not None]
    if not refused:
        return set()
    ids = [item.record.record_id for item, _ in refused]
    for part in chunked(ids, CHUNK):
        connection.execute(
            sa.delete(outbox).where(outbox.c.destination_id == destination_id, outbox.c.record_id.in_(part))
        )
    rows, ledger_rows = [], []
    for item, reason in refused:
        row = _outbox_row(destination_id, sync_id, item, now)
        row.update(status=FAILED, reason=reason, payload=storable(row["payload"]))
        row["snapshot_value"] = storable(row["snapshot_value"])
        rows.append(row)
        ledger_rows.append(
            _ledger_row(
                destination_id, sync_id, "refused", item.connection_id, item.record, 0, now, FAILED, reason
            )
        )
    connection.execute(sa.insert(outbox), rows)
    connection.execute(sa.insert(delivery_ledger), ledger_rows)
    return set(ids)


def _ledger_row(
    destination_id: str, sync_id: str, batch_id: str, connection_id: str, record: OutboundRecord, attempt: int,
    now: datetime, outcome: str, reason: str | None, sent: Any = None, response: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """One delivery ledger row: an attempt at a record, its outcome, what was sent and answered."""
    return {
        "destination_id": destination_id,
        "connection_id": connection_id,
        "record_id": record.record_id,
        "profile_id": record.profile_id,
        "batch_id": batch_id,
        "sync_id": sync_id,
        "operation": record.operation.value,
        "attempt": attempt,
        "sent_at": now,
        "outcome": outcome,
        "reason": reason,
        "sent": sent,
        "response": response,
    }


def _outbox_row(destination_id: str, sync_id: str, item: StagedRecord, now: datetime) -> dict[str, Any]:
    record = item.record
    return {
        "destination_id": destination_id,
        "record_id": record.record_id,
        "connection_id": item.connection_id,
        "change_id": item.change_id,
        "subject_key": item.subject_key,
        "profile_id": record.profile_id,
        "operation": record.operation.value,
        "payload": dict(record.payload),
        "snapshot_value": item.snapshot_value,
        "status": PENDING,
        "attempts": 0,
        "sync_id": sync_id,
        "staged_at": now,
        "updated_at": now,
    }


def recover(connection: sa.Connection, destination_id: str, now: datetime) -> int:
    """After a crash: in-flight records go back to pending, retry ones too; returns how many were in flight."""
    in_flight = connection.execute(
        sa.update(outbox)
        .where(outbox.c.destination_id == destination_id, outbox.c.status == IN_FLIGHT)
        .values(status=PENDING, updated_at=now)
    ).rowcount
    connection.execute(
        sa.update(outbox)
        .where(outbox.c.destination_id == destination_id, outbox.c.status == RETRY)
        .values(status=PENDING, updated_at=now)
    )
    connection.execute(
        sa.update(batches)
        .where(batches.c.destination_id == destination_id, batches.c.status == IN_FLIGHT)
        .values(status="abandoned", finished_at=now)
    )
    return int(in_flight or 0)


def pending_by_connection(connection: sa.Connection, destination_id: str) -> list[tuple[str, int]]:
    """Connections with pending records and how many, oldest first."""
    rows = connection.execute(
        sa.select(outbox.c.connection_id, sa.func.count(), sa.func.min(outbox.c.id).label("first"))
        .where(outbox.c.destination_id == destination_id, outbox.c.status == PENDING)
        .group_by(outbox.c.connection_id)
        .order_by(sa.text("first"))
    )
    return [(row[0], int(row[1])) for row in rows]


def pending_operations(connection: sa.Connection, destination_id: str, connection_id: str) -> dict[str, int]:
    """How many records of each operation a connection has pending."""
    rows = connection.execute(
        sa.select(outbox.c.operation, sa.func.count())
        .where(
            outbox.c.destination_id == destination_id,
            outbox.c.connection_id == connection_id,
            outbox.c.status == PENDING,
        )
        .group_by(outbox.c.operation)
    )
    return {str(row[0]): int(row[1]) for row in rows}


def claim_batch(
    connection: sa.Connection,
    destination_id: str,
    connection_id: str,
    sync_id: str,
    seq: int,
    limit: int,
    now: datetime,
) -> tuple[str, list[ClaimedRecord]]:
    """Claim up to `limit` pending records of one connection into a new in-flight batch."""
    rows = connection.execute(
        sa.select(
            outbox.c.id,
            outbox.c.record_id,
            outbox.c.profile_id,
            outbox.c.operation,
            outbox.c.payload,
            outbox.c.change_id,
            outbox.c.attempts,
        )
        .where(
            outbox.c.destination_id == destination_id,
            outbox.c.connection_id == connection_id,
            outbox.c.status == PENDING,
        )
        .order_by(outbox.c.id)
        .limit(limit)
    ).all()
    batch_id = uuid.uuid4().hex
    if not rows:
        return batch_id, []
    ids = [row.id for row in rows]
    connection.execute(
        sa.update(outbox)
        .where(outbox.c.id.in_(ids))
        .values(status=IN_FLIGHT, batch_id=batch_id, attempts=outbox.c.attempts + 1, updated_at=now)
    )
    connection.execute(
        sa.insert(batches).values(
            batch_id=batch_id,
            destination_id=destination_id,
            sync_id=sync_id,
            seq=seq,
            record_count=len(rows),
            status=IN_FLIGHT,
            started_at=now,
        )
    )
    claimed = [
        ClaimedRecord(
            row.id,
            OutboundRecord(row.record_id, row.profile_id, Operation(row.operation), row.payload),
            connection_id,
            row.change_id,
            int(row.attempts) + 1,
        )
        for row in rows
    ]
    return batch_id, claimed


def complete_batch(
    store: StateStore,
    connection: sa.Connection,
    destination_id: str,
    sync_id: str,
    batch_id: str,
    claimed: Sequence[ClaimedRecord],
    results: Sequence[RecordResult],
    metrics: Mapping[str, float],
    now: datetime,
) -> dict[Outcome, int]:
    """Record a batch's results: outbox statuses, ledger rows, snapshots of completed changes, batch done."""
    by_id = {r.record_id: r for r in results}
    counts = dict.fromkeys(Outcome, 0)
    updates: list[dict[str, Any]] = []
    ledger_rows: list[dict[str, Any]] = []
    for item in claimed:
        result = by_id.get(item.record.record_id) or RecordResult(
            item.record.record_id, Outcome.RETRY, "the client returned no result for this record"
        )
        counts[result.outcome] += 1
        updates.append(
            {"b_id": item.row_id, "b_status": result.outcome.value, "b_reason": stored_reason(result.reason)}
        )
        sent = result.sent if result.sent is not None else item.record.payload
        ledger_rows.append(
            _ledger_row(
                destination_id,
                sync_id,
                batch_id,
                item.connection_id,
                item.record,
                item.attempt,
                now,
                result.outcome.value,
                stored_reason(result.reason),
                sent,
                stored_answer(result.response),
            )
        )
    if updates:
        connection.execute(
            sa.update(outbox)
            .where(outbox.c.id == sa.bindparam("b_id"))
            .values(status=sa.bindparam("b_status"), reason=sa.bindparam("b_reason"), updated_at=now),
            updates,
        )
        connection.execute(sa.insert(delivery_ledger), ledger_rows)
    acknowledged_changes = sorted(
        {
            item.change_id
            for item in claimed
            if by_id.get(item.record.record_id) is not None
            and by_id[item.record.record_id].outcome is Outcome.ACKNOWLEDGED
        }
    )
    advance_snapshots(store, connection, destination_id, sync_id, acknowledged_changes, now, ACKNOWLEDGED)
    connection.execute(
        sa.update(batches)
        .where(batches.c.batch_id == batch_id)
        .values(status="done", finished_at=now, metrics=dict(metrics))
    )
    return counts
