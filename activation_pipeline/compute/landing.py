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
import pyarrow.compute as pc
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
from activation_pipeline.compute.sqlutil import create_table_as, drop_table, table_columns
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import WarehouseEventsSource

STAGING = "_landing_events"
STAGING_KEYS = "_landing_set_keys"
SORTED = "_events_by_time"
PARSE_ROWS = 250_000
"""Raw lines parsed at once: large enough to amortise a parse, small enough to bound its memory."""


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
    """One landing in progress: the connection, its batch, the parser and the staging tables.

    Raw chunks are buffered and parsed PARSE_ROWS at a time, so many small files (a day or an hour each, as
    archives hold them) cost one parse, not one each; manifest rows are written once every chunk is parsed.
    """

    conn: sa.Connection
    engine: ComputeEngine
    parser: MessageParser
    batch: int
    staging: sa.Table
    staging_keys: sa.Table
    summary: LandingSummary
    staged: int = 0
    buffer: list[pa.Table] = field(default_factory=list)
    buffered: int = 0
    counts: dict[str, list[int]] = field(default_factory=dict)
    records: list[tuple[str, bool, dict[str, Any]]] = field(default_factory=list)

    def stage(self, chunks: Iterable[pa.Table]) -> None:
        """Queue raw chunks for parsing into the staging tables."""
        for chunk in chunks:
            self.buffer.append(chunk)
            self.buffered += chunk.num_rows
            if self.buffered >= PARSE_ROWS:
                self.flush()

    def flush(self) -> None:
        """Parse what is queued: events and identifier sets to staging, quarantine straight in."""
        if not self.buffer:
            return
        parsed = self.parser.parse(pa.concat_tables(self.buffer))
        self.buffer, self.buffered = [], 0
        load_arrow(self.conn, self.staging, parsed.events)
        load_arrow(self.conn, self.staging_keys, parsed.set_keys)
        quarantine = parsed.quarantine.append_column(
            "batch", pa.array([self.batch] * parsed.quarantine.num_rows, pa.int64())
        )
        load_arrow(self.conn, self.engine.tables.quarantine, quarantine)
        self.summary.count(parsed)
        self.staged += parsed.events.num_rows
        for position, table in enumerate((parsed.events, parsed.quarantine)):
            for entry in pc.value_counts(table.column("source")).to_pylist():
                self.counts.setdefault(entry["values"], [0, 0])[position] += entry["counts"]
        _commit_staged(self)

    def record(self, source: str, *, appended: bool, **values: Any) -> None:
        """Queue a source's manifest row (written by `finish`, once its lines are parsed)."""
        self.records.append((source, appended, values))

    def touch(self, source: str, mtime_ns: int) -> None:
        """Record a new modification time for a source whose content did not change."""
        landed = self.engine.tables.landings
        self.conn.execute(sa.update(landed).where(landed.c.source == source).values(mtime_ns=mtime_ns))

    def finish(self) -> None:
        """Parse what is left and write the manifest rows (replacing each source's previous one)."""
        self.flush()
        landed = self.engine.tables.landings
        for source, appended, values in self.records:
            previous = self.conn.execute(
                sa.select(landed.c.events, landed.c.quarantined).where(landed.c.source == source)
            ).first()
            self.conn.execute(sa.delete(landed).where(landed.c.source == source))
            kept = (previous or (0, 0)) if appended else (0, 0)
            events, quarantined = self.counts.get(source, [0, 0])
            self.conn.execute(
                sa.insert(landed).values(
                    source=source,
                    batch=self.batch,
                    events=kept[0] + events,
                    quarantined=kept[1] + quarantined,
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
        if previous is not None and (previous.size, previous.mtime_ns) == (file.size, file.mtime_ns):
            summary.unchanged_sources += 1  # same size and modification time: not read, not hashed
            continue
        digest = file_digest(file.path, previous.size if can_append and previous is not None else None)
        if previous is not None and previous.content_hash == digest.content_hash:
            summary.unchanged_sources += 1
            landing.touch(file.name, file.mtime_ns)
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
        landing.stage(read_parquet(file) if reader is None else reader)
        lines = None if reader is None else reader.last_line
        landing.record(
            file.name,
            appended=appended,
            size=file.size,
            mtime_ns=file.mtime_ns,
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
        landing.stage([raw])
        if isinstance(newest, datetime) and newest.tzinfo is not None:
            newest = newest.astimezone(UTC).replace(tzinfo=None)
        landing.record(unit, appended=True, watermark=newest)


def _commit_staged(landing: _Landing) -> None:
    """Move staged events into `events` (first of each messageId, never one already landed), time-sorted.

    Runs after every parse, so the staging tables hold one parse's rows at most (bounded memory).
    """
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
    conn.execute(sa.delete(staging))
    conn.execute(sa.delete(keys))


def _keep_time_order(conn: sa.Connection, engine: ComputeEngine, landed: int) -> None:
    """Rewrite DuckDB's events in time order after a large landing, so window filters skip row groups.

    Each parse's rows go in sorted by time; history spread over many files interleaves, so a landing that
    added a quarter of the table or more (a history load) sorts the whole table once.
    """
    events = engine.tables.events
    total = int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0)
    if landed == 0 or landed * 4 < total:
        return
    create_table_as(conn, engine.schema, SORTED, sa.select(events).order_by(events.c.timestamp))
    sorted_events = sa.Table(
        SORTED, sa.MetaData(schema=engine.schema), *[sa.Column(c.name) for c in events.columns]
    )
    conn.execute(sa.delete(events))
    conn.execute(sa.insert(events).from_select([c.name for c in events.columns], sa.select(sorted_events)))
    drop_table(conn, engine.schema, SORTED)


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
            landing.finish()
            events = tables.events
            landed = sa.select(sa.func.count()).select_from(events).where(events.c.batch == batch)
            summary.events = int(conn.execute(landed).scalar() or 0)
            summary.duplicates = landing.staged - summary.events
            if engine.is_duckdb:
                _keep_time_order(conn, engine, summary.events)
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
