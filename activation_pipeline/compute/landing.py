"""Land what the events source holds and was not landed before, in one run, whatever dates its events carry.

Files are known by relative path, size and content hash (the `landed_sources` manifest): a new file is landed
whole; a file that grew and still begins with the bytes landed before is an append, and only its new lines
are read; any other change lands the file again in place of what it gave before. Warehouse tables are read
past a watermark (`received_at`, else `timestamp`). Events are deduplicated by messageId against everything
landed, so a re-read line is never stored twice, and every quarantined line is counted once. Events of one
landing share a batch number, so an incremental evaluation picks up late events (old timestamps in new files).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from activation_pipeline.compute import state
from activation_pipeline.compute.engine import ComputeEngine, load_arrow
from activation_pipeline.compute.event_columns import ensure_event_columns
from activation_pipeline.compute.ingest import MessageParser, Parsed
from activation_pipeline.compute.sources import (
    JsonlReader,
    event_files,
    file_digest,
    read_parquet,
    read_warehouse,
)
from activation_pipeline.compute.sqlutil import drop_table, table_columns
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import WarehouseEventsSource

STAGING = "_landing_events"
STAGING_KEYS = "_landing_set_keys"


class LegacySchemaError(RuntimeError):
    """The compute schema was created by a version that stored events by day."""


@dataclass
class LandingSummary:
    """What one landing did (counts only: no message content)."""

    batch: int | None = None
    new_sources: int = 0
    appended_sources: int = 0
    changed_sources: int = 0
    unchanged_sources: int = 0
    events: int = 0
    quarantined: int = 0
    duplicates: int = 0
    events_total: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def unchanged(self) -> bool:
        """True when nothing new was found in the source."""
        return self.new_sources + self.appended_sources + self.changed_sources == 0 and self.events == 0

    def count(self, parsed: Parsed) -> None:
        """Add a parsed chunk's quarantine figures."""
        self.quarantined += parsed.quarantine.num_rows
        for reason, n in parsed.reasons().items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n


@dataclass
class _Landing:
    """One landing in progress: the connection, its batch, the parser and the staging tables."""

    conn: sa.Connection
    engine: ComputeEngine
    parser: MessageParser
    batch: int
    staging: sa.Table
    staging_keys: sa.Table
    summary: LandingSummary
    staged: int = 0

    def stage(self, chunks: Iterable[pa.Table]) -> tuple[int, int]:
        """Parse raw chunks into the staging tables; quarantine goes straight in. Returns (events, quarantined)."""
        events = quarantined = 0
        for chunk in chunks:
            parsed = self.parser.parse(chunk)
            load_arrow(self.conn, self.staging, parsed.events)
            load_arrow(self.conn, self.staging_keys, parsed.set_keys)
            quarantine = parsed.quarantine.append_column(
                "batch", pa.array([self.batch] * parsed.quarantine.num_rows, pa.int64())
            )
            load_arrow(self.conn, self.engine.tables.quarantine, quarantine)
            self.summary.count(parsed)
            events += parsed.events.num_rows
            quarantined += parsed.quarantine.num_rows
        self.staged += events
        return events, quarantined

    def record(self, source: str, events: int, quarantined: int, **values: Any) -> None:
        """Write a source's manifest row (replacing the previous one)."""
        landed = self.engine.tables.landings
        previous = self.conn.execute(
            sa.select(landed.c.events, landed.c.quarantined).where(landed.c.source == source)
        ).first()
        self.conn.execute(sa.delete(landed).where(landed.c.source == source))
        keep_events, keep_quarantined = (previous or (0, 0)) if values.pop("appended", False) else (0, 0)
        self.conn.execute(
            sa.insert(landed).values(
                source=source,
                batch=self.batch,
                events=keep_events + events,
                quarantined=keep_quarantined + quarantined,
                landed_at=datetime.now(UTC).replace(tzinfo=None),
                **values,
            )
        )

    def forget(self, source: str, landed_batch: int) -> None:
        """Remove what a source gave before (it changed); a full evaluation follows if it was used."""
        tables = self.engine.tables
        self.conn.execute(sa.delete(tables.events).where(tables.events.c.source == source))
        self.conn.execute(sa.delete(tables.quarantine).where(tables.quarantine.c.source == source))
        if landed_batch <= state.get_int(self.conn, tables, state.IDENTITY_BATCH):
            # Events already folded into profiles were replaced: merges cannot be undone incrementally.
            state.set_flag(self.conn, tables, state.IDENTITY_NEEDS_FULL, True)
            state.set_flag(self.conn, tables, state.EVALUATION_NEEDS_FULL, True)


def _staging_tables(conn: sa.Connection, engine: ComputeEngine) -> tuple[sa.Table, sa.Table]:
    tables = engine.tables
    md = sa.MetaData(schema=engine.schema)
    events = sa.Table(
        STAGING, md, *[sa.Column(c.name, c.type) for c in tables.events.columns if c.name != "batch"]
    )
    keys = sa.Table(STAGING_KEYS, md, *[sa.Column(c.name, c.type) for c in tables.set_keys.columns])
    for table in (events, keys):
        table.drop(conn, checkfirst=True)
        table.create(conn)
    return events, keys


def _land_files(landing: _Landing, workspace: Workspace) -> None:
    landed = landing.engine.tables.landings
    known = {r.source: r for r in landing.conn.execute(sa.select(landed))}
    summary = landing.summary
    for file in event_files(workspace):
        previous = known.get(file.name)
        can_append = (
            previous is not None
            and not file.is_parquet
            and previous.complete
            and previous.size is not None
            and file.size > previous.size
        )
        digest = file_digest(file.path, previous.size if can_append and previous is not None else None)
        if previous is not None and previous.content_hash == digest.content_hash:
            summary.unchanged_sources += 1
            continue
        appended = can_append and previous is not None and digest.prefix_hash == previous.content_hash
        if appended and previous is not None:
            summary.appended_sources += 1
            offset, first_line = int(previous.size), int(previous.lines) + 1
        else:
            if previous is not None:
                summary.changed_sources += 1
                landing.forget(file.name, int(previous.batch))
            else:
                summary.new_sources += 1
            offset, first_line = 0, 1
        reader = None if file.is_parquet else JsonlReader(file, offset, first_line)
        events, quarantined = landing.stage(read_parquet(file) if reader is None else reader)
        lines = None if reader is None else reader.last_line
        landing.record(
            file.name,
            events,
            quarantined,
            appended=appended,
            size=file.size,
            content_hash=digest.content_hash,
            lines=lines,
            complete=digest.complete,
        )


def _land_warehouse(landing: _Landing, workspace: Workspace) -> None:
    landed = landing.engine.tables.landings
    marks = {
        r.source: r.watermark for r in landing.conn.execute(sa.select(landed.c.source, landed.c.watermark))
    }
    for unit, raw, newest in read_warehouse(workspace, marks):
        if raw.num_rows == 0:
            landing.summary.unchanged_sources += 1
            continue
        if unit in marks:
            landing.summary.appended_sources += 1
        else:
            landing.summary.new_sources += 1
        events, quarantined = landing.stage([raw])
        if isinstance(newest, datetime) and newest.tzinfo is not None:
            newest = newest.astimezone(UTC).replace(tzinfo=None)
        landing.record(unit, events, quarantined, appended=True, watermark=newest)


def _commit_staged(landing: _Landing) -> int:
    """Move staged events into `events` (first of each messageId, never one already landed), time-sorted."""
    conn, tables = landing.conn, landing.engine.tables
    staging, events = landing.staging, tables.events
    columns = [c.name for c in staging.columns]
    ranked = sa.select(
        staging,
        sa.func.row_number()
        .over(partition_by=staging.c.message_id, order_by=[staging.c.source, staging.c.line])
        .label("_rank"),
    ).subquery("ranked")
    fresh = (
        sa.select(*[ranked.c[c] for c in columns], sa.literal(landing.batch, sa.BigInteger).label("batch"))
        .where(ranked.c._rank == 1)
        .where(~sa.exists().where(events.c.message_id == ranked.c.message_id))
        .order_by(ranked.c.timestamp)
    )
    conn.execute(sa.insert(events).from_select([*columns, "batch"], fresh))
    keys = landing.staging_keys
    new_keys = (
        sa.select(keys.c.set_hash, keys.c.pos, keys.c.identifier_type, keys.c.value)
        .distinct()
        .where(~sa.exists().where(tables.set_keys.c.set_hash == keys.c.set_hash))
    )
    conn.execute(
        sa.insert(tables.set_keys).from_select(["set_hash", "pos", "identifier_type", "value"], new_keys)
    )
    landed = sa.select(sa.func.count()).select_from(events).where(events.c.batch == landing.batch)
    return int(conn.execute(landed).scalar() or 0)


def land_events(engine: ComputeEngine, workspace: Workspace) -> LandingSummary:
    """Land everything in the workspace's events source that was not landed before (one batch)."""
    started = time.perf_counter()
    summary = LandingSummary()
    tables = engine.tables
    with engine.begin() as conn:
        if "source" not in table_columns(conn, engine.schema, tables.events.name):
            raise LegacySchemaError(
                f"compute schema '{engine.schema}' was written by an earlier version that landed events by day: "
                "drop that schema (with DuckDB, delete the compute file) and run again; events are landed "
                "again from the source, and deliveries already made are kept in the state store"
            )
        columns = ensure_event_columns(conn, tables.events, workspace)
        batch = (conn.execute(sa.select(sa.func.max(tables.landings.c.batch))).scalar() or 0) + 1
        staging, staging_keys = _staging_tables(conn, engine)
        parser = MessageParser(workspace, columns)
        landing = _Landing(conn, engine, parser, batch, staging, staging_keys, summary)
        try:
            if isinstance(workspace.sources.events, WarehouseEventsSource):
                _land_warehouse(landing, workspace)
            else:
                _land_files(landing, workspace)
            summary.events = _commit_staged(landing) if landing.staged else 0
            summary.duplicates = landing.staged - summary.events
        finally:
            parser.close()
            drop_table(conn, engine.schema, STAGING)
            drop_table(conn, engine.schema, STAGING_KEYS)
        summary.batch = batch if not summary.unchanged or summary.quarantined else None
        summary.events_total = int(
            conn.execute(sa.select(sa.func.count()).select_from(tables.events)).scalar() or 0
        )
    summary.seconds = time.perf_counter() - started
    return summary
