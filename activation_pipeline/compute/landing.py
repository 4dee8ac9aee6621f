"""Land what the events source holds and was not landed before, in one run, whatever dates its events carry.

Files are known by relative path, size and content hash (the `landed_sources` manifest): a new file is landed
whole; a file that grew and still begins with the bytes landed before is an append, and only its new lines
are read; any other change lands the file again in place of what it gave before. Warehouse tables are read
past a watermark (`received_at`, else `timestamp`). Events are deduplicated by messageId against everything
landed (on DuckDB once, at the end of a landing), so a re-read line is never stored twice, and every quarantined
line is counted once. Events of one landing share a batch number, so an incremental evaluation picks up late
events (old timestamps in new files).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from activation_pipeline.compute import state
from activation_pipeline.compute.engine import (
    ComputeEngine,
    arrow_view,
    duckdb_arrow,
    duckdb_memory_limit,
    duckdb_threads,
    load_arrow,
    lower_duckdb_memory,
    set_duckdb_memory,
)
from activation_pipeline.compute.event_columns import ensure_event_columns
from activation_pipeline.compute.ingest import MessageParser, Parsed
from activation_pipeline.compute.sources import (
    JsonlReader,
    UnreadableFileError,
    event_files,
    file_digest,
    read_parquet,
    read_warehouse,
)
from activation_pipeline.compute.sqlutil import create_table_as, drop_table, rename_table, table_columns
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import WarehouseEventsSource
from activation_pipeline.errors import ComputeError

STAGING = "_landing_events"
STAGING_SETS = {"identifier_sets": "_landing_identifier_sets", "set_keys": "_landing_set_keys"}
"""Staging table of each table describing identifier sets (each set is stored once, by its first landing)."""
SORTED = "_events_by_time"
PARSE_ROWS = 250_000
"""Raw lines parsed at once: large enough to amortise a parse, small enough to bound its memory."""
PARSE_BYTES = 256 * 1024 * 1024
"""Raw text parsed at once at most, whatever the lines' size (and below Arrow's 2 GiB per string array)."""
ROW_GROUP = 122_880
"""DuckDB's rows per row group: events are appended in whole row groups (see `_Landing._store_duckdb`)."""
LANDING_MEMORY = 512 * 2**20
"""DuckDB's memory limit while landing. Storing a parse streams, and removing repeated messages spills; with its
whole limit DuckDB kept the stored events cached (20M events: peak 2.26 GB, 1.61 GB with this)."""


class LegacySchemaError(ComputeError, RuntimeError):
    """The compute schema was created by a version that stored events by day."""


class UnreadableSourcesError(ComputeError, RuntimeError):
    """Event files could not be read: the rest was landed (`summary`), these are read again by the next run."""

    def __init__(self, files: dict[str, str], summary: LandingSummary) -> None:
        """The unreadable files (name: why) and what the landing did without them."""
        listed = "; ".join(f"{name}: {reason}" for name, reason in sorted(files.items()))
        super().__init__(
            f"{len(files)} event file(s) could not be read and were not landed (the other files were; these are "
            f"read again on the next run): {listed}"
        )
        self.files, self.summary = files, summary


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
class _Pending:
    """A parse under way, with the removals and manifest rows to write in the same transaction."""

    parsed: Future[Parsed] | None
    forgets: list[tuple[str, int]]
    records: list[tuple[str, bool, dict[str, Any]]]


@dataclass
class _Landing:
    """One landing in progress: its batch, the parser, the staging tables and what waits to be written.

    Raw chunks are buffered and parsed PARSE_ROWS (or PARSE_BYTES) at a time, so many small files (a day or an hour each, as
    archives hold them) cost one parse, not one each. A parse runs on a thread of its own while the one
    before it is written and the next lines are read (DuckDB and numpy release the GIL, so the two cores
    overlap). Each parse is written in a transaction of its own (memory stays bounded however long the
    history), in order, together with what the files it completes change: removing what a changed file gave
    before, and the file's manifest row, written with its last lines.
    """

    engine: ComputeEngine
    parser: MessageParser
    batch: int
    staging: sa.Table
    staging_sets: dict[str, sa.Table]
    summary: LandingSummary
    worker: ThreadPoolExecutor
    staged: int = 0
    buffer: list[pa.Table] = field(default_factory=list)
    buffered: int = 0
    buffered_bytes: int = 0
    pending: _Pending | None = None
    counts: dict[str, list[int]] = field(default_factory=dict)
    forgets: list[tuple[str, int]] = field(default_factory=list)
    records: list[tuple[str, bool, dict[str, Any]]] = field(default_factory=list)
    carry: pa.Table | None = None
    """DuckDB: fresh events held back until they fill a row group (written by the last parse at the latest)."""
    deferred: list[tuple[str, bool, dict[str, Any]]] = field(default_factory=list)
    """Manifest rows of sources that still have events in `carry`."""
    stored: int = 0
    """Rows in DuckDB's events table (as counted when the landing began, plus what it appended)."""
    newest: datetime | None = None
    in_time_order: bool = True
    """False once a parse held events older than ones already stored (then DuckDB's table is re-sorted)."""
    unreadable: dict[str, str] = field(default_factory=dict)
    """Files that failed part-way through reading (name: why): what they gave is removed when the landing ends."""

    def stage(self, chunks: Iterable[pa.Table]) -> None:
        """Queue raw chunks for parsing into the staging tables."""
        for chunk in chunks:
            self.buffer.append(chunk)
            self.buffered += chunk.num_rows
            self.buffered_bytes += chunk.nbytes
            if self.buffered >= PARSE_ROWS or self.buffered_bytes >= PARSE_BYTES:
                self.flush(wait=False)

    def flush(self, *, wait: bool = True) -> None:
        """Start parsing what is queued; write the parse before it (and, with `wait`, this one too).

        A parse is written with the removals and manifest rows queued before it, in one transaction.
        """
        # One chunk: DuckDB scans each Arrow chunk on its own (3,000 files of 20 lines: landing 6.7 s -> 2.7 s).
        raw = pa.concat_tables(self.buffer).combine_chunks() if self.buffer else None
        self.buffer, self.buffered, self.buffered_bytes = [], 0, 0
        started = _Pending(
            None if raw is None else self.worker.submit(self.parser.parse, raw), self.forgets, self.records
        )
        self.forgets, self.records = [], []
        self.finish_pending()
        self.pending = started
        if wait:
            self.finish_pending(last=True)

    def finish_pending(self, *, last: bool = False) -> None:
        """Write the parse under way, if any (also after a source fails to read: what was read is kept).

        The `last` write also stores the events held back for a whole row group, and every manifest row.
        """
        pending, self.pending = self.pending, None
        if pending is None and last:
            pending = _Pending(None, [], [])
        if pending is not None:
            self._finish(pending, last)

    def _finish(self, pending: _Pending, last: bool) -> None:
        parsed = None if pending.parsed is None else pending.parsed.result()
        with self.engine.begin() as conn:
            for source, landed_batch in pending.forgets:
                _forget(conn, self.engine, _source_rows(self.engine, source), landed_batch)
            if parsed is not None:
                self._write(conn, parsed)
            if self.engine.is_duckdb and (parsed is not None or last):
                self._store_duckdb(conn, parsed, last)
            if parsed is not None:
                self._add_sets(conn, {"identifier_sets": parsed.sets, "set_keys": parsed.set_keys})
            # A source's manifest row goes in with its last events: not while some are held back.
            held = set() if self.carry is None else set(pc.unique(self.carry.column("source")).to_pylist())
            records = self.deferred + pending.records
            self.deferred = [r for r in records if r[0] in held]
            self._write_records(conn, [r for r in records if r[0] not in held])

    def _write(self, conn: sa.Connection, parsed: Parsed) -> None:
        quarantine = parsed.quarantine.append_column(
            "batch", pa.array([self.batch] * parsed.quarantine.num_rows, pa.int64())
        )
        load_arrow(conn, self.engine.tables.quarantine, quarantine)
        if not self.engine.is_duckdb:
            load_arrow(conn, self.staging, parsed.events)
            _commit_staged(conn, self, self.staging, _Shape.of(parsed.events))
            conn.execute(sa.delete(self.staging))
        self._follow_time_order(parsed.events.column("timestamp"))
        self.summary.count(parsed)
        self.staged += parsed.events.num_rows
        for position, table in enumerate((parsed.events, parsed.quarantine)):
            for entry in pc.value_counts(table.column("source")).to_pylist():
                self.counts.setdefault(entry["values"], [0, 0])[position] += entry["counts"]

    def _store_duckdb(self, conn: sa.Connection, parsed: Parsed | None, last: bool) -> None:
        """Add a parse's events to DuckDB's events table (first of each messageId, by time), in whole row groups.

        Copies of messages landed before are removed once, at the end of the landing (`_remove_repeats`).

        DuckDB writes a transaction's rows straight to the file in row groups of ROW_GROUP rows; a part-filled
        one at the end of each commit made the checkpoint rewrite all that followed it (2.8 s of a 14 s
        landing of 2M events, and a file 50% larger). So each commit appends only what fills row groups
        exactly, and holds the rest back for the next one. (Deletions of a changed file's rows are not
        counted: alignment is then lost until the table is rewritten, which only costs time.)
        """
        staged = self.carry if parsed is None else _with_carry(self.carry, parsed.events)
        if staged is not None and staged.num_rows:
            columns = [c.name for c in self.staging.columns]
            shape = _Shape.of(staged)
            pending = staged
            if not (shape.unique_ids and shape.in_time_order):  # else nothing to leave out or move
                numbered = staged.select(columns).append_column("_pos", pa.array(np.arange(staged.num_rows)))
                types = {c.name: c.type for c in self.staging.columns}
                with arrow_view(conn, numbered, types) as view:
                    fresh = _fresh_positions(conn, view, columns, shape, carried=_rows(self.carry))
                pending = staged if _is_identity(fresh, staged.num_rows) else staged.take(fresh)
            count = pending.num_rows
            if not last:
                count = (self.stored + count) // ROW_GROUP * ROW_GROUP - self.stored
            count = max(count, 0)
            if count:
                rows_in = _typed_as_json(pending.slice(0, count).combine_chunks(), self.staging)
                # The append on one thread, while the parser's DuckDB works on every core (on two cores, with both
                # on all of them: 2M events 11.2-13.5 s, 10.0-10.4 s so).
                with _typed_view(conn, self.staging, rows_in) as view, duckdb_threads(conn, 1):
                    rows = sa.select(*[view.c[c] for c in columns], sa.literal(self.batch, sa.BigInteger))
                    conn.execute(sa.insert(self.engine.tables.events).from_select([*columns, "batch"], rows))
            self.stored += count
            self.carry = pending.slice(count) if count < pending.num_rows else None

    def _add_sets(self, conn: sa.Connection, parsed: dict[str, pa.Table]) -> None:
        """Store the identifier sets (texts and keys) of a parse that are not stored yet."""
        if self.engine.is_duckdb:
            # A set's keys go in with its text: one scan of the stored sets finds which are new. DuckDB reads
            # the parse in place, with the join's hash table on its side (not on every stored set).
            stored = self.engine.tables.identifier_sets
            with _typed_view(conn, self.staging_sets["identifier_sets"], parsed["identifier_sets"]) as view:
                known = sa.select(stored.c.set_hash).where(stored.c.set_hash.in_(sa.select(view.c.set_hash)))
                new = duckdb_arrow(conn, sa.select(view.c.set_hash).where(view.c.set_hash.not_in(known)))
            for name, data in parsed.items():
                fresh = data.filter(pc.is_in(data.column("set_hash"), new.column("set_hash")))
                load_arrow(conn, getattr(self.engine.tables, name), fresh)
            return
        for name, data in parsed.items():
            stored, staging = getattr(self.engine.tables, name), self.staging_sets[name]
            load_arrow(conn, staging, data)
            unknown = ~sa.exists().where(stored.c.set_hash == staging.c.set_hash)
            _insert_where(conn, stored, staging, unknown)
            conn.execute(sa.delete(staging))

    def _follow_time_order(self, timestamps: pa.ChunkedArray) -> None:
        if len(timestamps) == 0:
            return
        oldest, newest = pc.min_max(timestamps).values()
        if self.newest is not None and oldest.as_py() < self.newest:
            self.in_time_order = False
        self.newest = max(filter(None, (self.newest, newest.as_py())))

    def record(self, source: str, *, appended: bool, **values: Any) -> None:
        """Queue a source's manifest row: written with the source's last lines."""
        self.records.append((source, appended, values))

    def forget(self, source: str, landed_batch: int) -> None:
        """Queue removing what a source gave before (it changed)."""
        self.forgets.append((source, landed_batch))

    def _write_records(self, conn: sa.Connection, records: list[tuple[str, bool, dict[str, Any]]]) -> None:
        if not records:
            return
        landed = self.engine.tables.landings
        names = [source for source, _, _ in records]
        # One statement each for all the files a parse completes (an archive may hold thousands of small files).
        previous = {
            r.source: (r.events, r.quarantined)
            for r in conn.execute(
                sa.select(landed.c.source, landed.c.events, landed.c.quarantined).where(
                    landed.c.source.in_(names)
                )
            )
        }
        conn.execute(sa.delete(landed).where(landed.c.source.in_(names)))
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = []
        for source, appended, values in records:
            kept = previous.get(source, (0, 0)) if appended else (0, 0)
            events, quarantined = self.counts.get(source, [0, 0])
            rows.append(
                {
                    **dict.fromkeys(landed.c.keys()),  # files have no watermark, tables no size
                    "source": source,
                    "batch": self.batch,
                    "events": kept[0] + events,
                    "quarantined": kept[1] + quarantined,
                    "landed_at": now,
                    **values,
                }
            )
        conn.execute(sa.insert(landed), rows)


def _source_rows(engine: ComputeEngine, source: str) -> tuple[Any, Any]:
    """Which events and quarantined lines a source gave (conditions on the two tables)."""
    tables = engine.tables
    return tables.events.c.source == source, tables.quarantine.c.source == source


def _forget(conn: sa.Connection, engine: ComputeEngine, rows: tuple[Any, Any], landed_batch: int) -> None:
    """Remove events and quarantined lines; a full evaluation follows if the events were already used."""
    tables = engine.tables
    conn.execute(sa.delete(tables.events).where(rows[0]))
    conn.execute(sa.delete(tables.quarantine).where(rows[1]))
    if landed_batch <= state.get_int(conn, tables, state.IDENTITY_BATCH):
        # Events already folded into profiles were replaced: merges cannot be undone incrementally.
        state.set_flag(conn, tables, state.IDENTITY_NEEDS_FULL, True)
        state.set_flag(conn, tables, state.EVALUATION_NEEDS_FULL, True)


def _discard_unreadable(conn: sa.Connection, landing: _Landing) -> None:
    """Remove what the files that failed part-way through reading gave in this landing, and its counts."""
    tables, names, summary = landing.engine.tables, sorted(landing.unreadable), landing.summary
    quarantine, events = tables.quarantine, tables.events
    theirs = sa.and_(quarantine.c.batch == landing.batch, quarantine.c.source.in_(names))
    counted = sa.select(quarantine.c.reason, sa.func.count()).where(theirs).group_by(quarantine.c.reason)
    for reason, count in conn.execute(counted):
        summary.quarantined -= count
        summary.reasons[reason] -= count
        if not summary.reasons[reason]:
            del summary.reasons[reason]
    landing.staged -= sum(landing.counts.pop(name, [0, 0])[0] for name in names)
    conn.execute(sa.delete(quarantine).where(theirs))
    conn.execute(sa.delete(events).where(events.c.batch == landing.batch, events.c.source.in_(names)))


def _recover(conn: sa.Connection, engine: ComputeEngine, interrupted: int) -> None:
    """Remove what an interrupted landing wrote for sources whose manifest row it did not get to write."""
    tables = engine.tables
    finished = sa.select(tables.landings.c.source).where(tables.landings.c.batch == interrupted)
    rows = (
        sa.and_(tables.events.c.batch == interrupted, tables.events.c.source.not_in(finished)),
        sa.and_(tables.quarantine.c.batch == interrupted, tables.quarantine.c.source.not_in(finished)),
    )
    _forget(conn, engine, rows, interrupted)
    if engine.is_duckdb:  # the interrupted landing did not get to remove its repeated messages
        _remove_repeats(conn, engine, interrupted)


def _staging_tables(conn: sa.Connection, engine: ComputeEngine) -> tuple[sa.Table, dict[str, sa.Table]]:
    tables = engine.tables
    md = sa.MetaData(schema=engine.schema)
    events = sa.Table(
        STAGING, md, *[sa.Column(c.name, c.type) for c in tables.events.columns if c.name != "batch"]
    )
    sets = {
        name: sa.Table(staging, md, *[sa.Column(c.name, c.type) for c in getattr(tables, name).columns])
        for name, staging in STAGING_SETS.items()
    }
    for table in (events, *sets.values()):
        table.drop(conn, checkfirst=True)
        table.create(conn)
    return events, sets


def _land_files(landing: _Landing, workspace: Workspace) -> None:
    landed = landing.engine.tables.landings
    with landing.engine.begin() as conn:
        known = {r.source: r for r in conn.execute(sa.select(landed))}
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
        # A new JSONL file is hashed as it is read; a known one first (its content may be what was landed).
        new_jsonl = previous is None and not file.is_parquet
        digest = None if new_jsonl else file_digest(file, previous.size if can_append and previous else None)
        if previous is not None and digest is not None and previous.content_hash == digest.content_hash:
            summary.unchanged_sources += 1
            with landing.engine.begin() as conn:  # the content is the same: remember its new time
                conn.execute(
                    sa.update(landed).where(landed.c.source == file.name).values(mtime_ns=file.mtime_ns)
                )
            continue
        appended = (
            can_append
            and previous is not None
            and digest is not None
            and digest.prefix_hash == previous.content_hash
        )
        if appended and previous is not None:
            offset, first_line = int(previous.size), int(previous.lines) + 1
        else:
            if previous is not None:
                landing.forget(file.name, int(previous.batch))
            offset, first_line = 0, 1
        reader = None if file.is_parquet else JsonlReader(file, offset, first_line)
        try:
            landing.stage(read_parquet(file) if reader is None else reader)
        except UnreadableFileError as error:
            # A gzip file still being uploaded: the other files are landed, this one is read again next time.
            landing.unreadable[file.name] = error.reason
            continue
        if appended:
            summary.appended_sources += 1
        elif previous is not None:
            summary.changed_sources += 1
        else:
            summary.new_sources += 1
        lines = None if reader is None else reader.last_line
        digest = digest or (None if reader is None else reader.digest)
        assert digest is not None  # a new JSONL file was read whole
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
    with landing.engine.begin() as conn:
        marks = {r.source: r.watermark for r in conn.execute(sa.select(landed.c.source, landed.c.watermark))}
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


def _typed_as_json(events: pa.Table, like: sa.Table) -> pa.Table:
    """The parser's JSON texts (traits, properties, context) typed as JSON, for DuckDB to store as they are.

    As plain strings, DuckDB parses each again to check it on the way into a JSON column (0.2 us an event for
    small objects, more for a large context); the parser wrote them from one JSON parse, so they are valid.
    """
    for column in like.columns:
        where = events.schema.get_field_index(column.name)
        if (
            isinstance(column.type, sa.JSON)
            and where >= 0
            and pa.types.is_string(events.schema.field(where).type)
        ):
            texts = events.column(where)
            typed = pa.chunked_array(
                [pa.ExtensionArray.from_storage(pa.json_(), c) for c in texts.chunks], pa.json_()
            )
            events = events.set_column(where, column.name, typed)
    return events


def _typed_view(conn: sa.Connection, like: sa.Table, data: pa.Table) -> Any:
    """Parsed rows as a DuckDB view with the columns and types of `like`."""
    return arrow_view(
        conn, data.select([c.name for c in like.columns]), {c.name: c.type for c in like.columns}
    )


@dataclass(frozen=True)
class _Shape:
    """What one parse's events already are, so that committing them skips work they do not need."""

    unique_ids: bool
    """No messageId twice (nothing to rank)."""
    in_time_order: bool
    """Already sorted by time (nothing to sort)."""

    @classmethod
    def of(cls, events: pa.Table) -> _Shape:
        """Read off the parsed Arrow columns (vectorised, no SQL)."""
        # Distinct message hashes (integers) mean distinct messageIds; a rare clash only costs the ranking.
        ids, times = events.column("message_hash"), events.column("timestamp").combine_chunks()
        ordered = (
            len(times) < 2 or pc.all(pc.greater_equal(times.slice(1), times.slice(0, len(times) - 1))).as_py()
        )
        # Sorting the integers costs a fifth of hashing them (count_distinct); a null hash is ranked as a repeat.
        hashes = ids.to_numpy() if ids.null_count == 0 else None
        unique = hashes is not None and bool(np.all(np.diff(np.sort(hashes)) != 0))
        return cls(unique, bool(ordered))


def _rows(table: pa.Table | None) -> int:
    return 0 if table is None else table.num_rows


def _with_carry(carry: pa.Table | None, events: pa.Table) -> pa.Table:
    """The events held back, then a parse's events (one table)."""
    return events if carry is None else pa.concat_tables([carry, events])


def _is_identity(positions: pa.Array, rows: int) -> bool:
    """True when the positions are every row in order (nothing left out, nothing moved)."""
    if len(positions) != rows:
        return False
    return rows < 2 or bool(pc.all(pc.equal(positions, pa.array(np.arange(rows)))).as_py())


def _first_of_each_id(staged: Any, columns: list[str], first: list[Any]) -> Any:
    """Rows with `_rank`: 1 for the first of each messageId in the order `first`, then source and line (staged
    rows of a parse, or stored copies of a message)."""
    return sa.select(
        *[staged.c[c] for c in columns],
        sa.func.row_number()
        .over(partition_by=staged.c.message_id, order_by=[*first, staged.c.source, staged.c.line])
        .label("_rank"),
    ).subquery("ranked")


def _fresh_positions(
    conn: sa.Connection, staged: Any, columns: list[str], shape: _Shape, carried: int
) -> pa.Array:
    """DuckDB: the staged rows (`_pos`) to store: the first of each messageId, by time.

    The first `carried` rows were held back by the commit before: they win over a later copy. Ranking
    duplicates and sorting by time are skipped when the rows need neither.
    """
    ranked = (
        staged
        if shape.unique_ids
        else _first_of_each_id(staged, [*columns, "_pos"], [staged.c._pos >= carried])
    )
    fresh = sa.select(ranked.c._pos)
    if not shape.unique_ids:
        fresh = fresh.where(ranked.c._rank == 1)
    fresh = fresh.order_by(ranked.c._pos if shape.in_time_order else ranked.c.timestamp)
    return duckdb_arrow(conn, fresh).column("_pos").combine_chunks()


def _remove_repeats(conn: sa.Connection, engine: ComputeEngine, batch: int) -> None:
    """DuckDB: remove the batch's events whose messageId was landed before, in an earlier batch or earlier in it.

    One pass at the end of a landing: checking each parse against every stored message hash scanned them all
    once per parse (at 60M stored events, a sixth of the time to land 2M more). The earlier copy wins: an
    earlier batch's, else the first by source and line (the order files and their lines are landed in).
    """
    events = engine.tables.events
    mine = sa.select(events.c.message_hash).where(events.c.batch == batch)
    repeated = (
        sa.select(events.c.message_hash)
        .where(events.c.message_hash.in_(mine))
        .group_by(events.c.message_hash)
        .having(sa.func.count() > 1)
    )
    copies = events.alias("copies")
    found = (
        sa.select(
            sa.literal_column("copies.rowid").label("row_id"),
            copies.c.batch,
            copies.c.message_id,
            copies.c.source,
            copies.c.line,
        )
        .where(copies.c.message_hash.in_(repeated))
        .subquery("found")
    )
    ranked = _first_of_each_id(found, ["row_id", "batch"], [found.c.batch])
    later = sa.select(ranked.c.row_id).where(ranked.c._rank > 1, ranked.c.batch == batch)
    conn.execute(sa.delete(events).where(sa.literal_column("rowid").in_(later)))


def _commit_staged(conn: sa.Connection, landing: _Landing, staged: Any, shape: _Shape) -> None:
    """PostgreSQL: add staged events to `events` (first of each messageId, never one already landed).

    Runs after every parse, so what is staged is one parse's rows at most (bounded memory).
    """
    events = landing.engine.tables.events
    columns = [c.name for c in landing.staging.columns]
    ranked = staged if shape.unique_ids else _first_of_each_id(staged, columns, [])
    not_landed = ~sa.exists().where(events.c.message_id == ranked.c.message_id)  # by its index
    fresh = sa.select(
        *[ranked.c[c] for c in columns], sa.literal(landing.batch, sa.BigInteger).label("batch")
    ).where(not_landed)
    if not shape.unique_ids:
        fresh = fresh.where(ranked.c._rank == 1)
    if not shape.in_time_order:
        fresh = fresh.order_by(ranked.c.timestamp)
    conn.execute(sa.insert(events).from_select([*columns, "batch"], fresh))


def _insert_where(conn: sa.Connection, stored: sa.Table, staged: Any, condition: Any) -> None:
    """Insert the staged rows meeting `condition` into `stored` (same columns; a parse gives each set once)."""
    columns = [c.name for c in stored.columns]
    rows = sa.select(*[staged.c[c] for c in columns]).where(condition)
    conn.execute(sa.insert(stored).from_select(columns, rows))


def _keep_time_order(conn: sa.Connection, engine: ComputeEngine, landing: _Landing, landed: int) -> None:
    """Rewrite DuckDB's events in time order after a large landing, so window filters skip row groups.

    Each parse's rows go in sorted by time; history spread over many files out of order interleaves, so a
    landing that added a quarter of the table or more (a history load) and came out of order sorts the whole
    table once. Files landed in time order (as exports and archives name them) need no sort.
    """
    events = engine.tables.events
    total = int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0)
    if landed == 0 or landed * 4 < total or landing.in_time_order:
        return
    create_table_as(conn, engine.schema, SORTED, sa.select(events).order_by(events.c.timestamp))
    rename_table(conn, engine.schema, SORTED, events.name)


@contextmanager
def _landing_memory(engine: ComputeEngine) -> Iterator[None]:
    """DuckDB's memory limit held to LANDING_MEMORY while parses are stored, then set back."""
    with engine.begin() as conn:
        limit = duckdb_memory_limit(conn) if engine.is_duckdb else None
        restore = (
            None
            if limit is None or limit <= LANDING_MEMORY
            else lower_duckdb_memory(conn, engine, LANDING_MEMORY)
        )
    try:
        yield
    finally:
        if restore is not None:
            with engine.begin() as conn:
                set_duckdb_memory(conn, restore)


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
        interrupted = state.get_int(conn, tables, state.LANDING_BATCH)
        if interrupted:
            _recover(conn, engine, interrupted)
        landed_max = conn.execute(sa.select(sa.func.max(tables.landings.c.batch))).scalar() or 0
        batch = max(landed_max, interrupted) + 1
        state.put(conn, tables, state.LANDING_BATCH, str(batch))
        staging, staging_sets = _staging_tables(conn, engine)
    parser = MessageParser(workspace, columns)
    worker = ThreadPoolExecutor(1, thread_name_prefix="landing-parse")
    landing = _Landing(engine, parser, batch, staging, staging_sets, summary, worker)
    with engine.begin() as conn:
        landing.newest = conn.execute(sa.select(sa.func.max(tables.events.c.timestamp))).scalar()
        landing.stored = int(
            conn.execute(sa.select(sa.func.count()).select_from(tables.events)).scalar() or 0
        )
    try:
        with _landing_memory(engine):
            try:
                if isinstance(workspace.sources.events, WarehouseEventsSource):
                    _land_warehouse(landing, workspace)
                else:
                    _land_files(landing, workspace)
            except Exception:
                landing.finish_pending(last=True)
                raise
            landing.flush()
            if landing.unreadable:
                with engine.begin() as conn:
                    _discard_unreadable(conn, landing)
            if engine.is_duckdb:
                with engine.begin() as conn:
                    _remove_repeats(conn, engine, batch)
    finally:
        worker.shutdown(cancel_futures=True)  # after an error, wait for a parse under way before closing
        parser.close()
    with engine.begin() as conn:
        events = tables.events
        landed = sa.select(sa.func.count()).select_from(events).where(events.c.batch == batch)
        summary.events = int(conn.execute(landed).scalar() or 0)
        summary.duplicates = landing.staged - summary.events
        if engine.is_duckdb:
            _keep_time_order(conn, engine, landing, summary.events)
        for name in (STAGING, *STAGING_SETS.values()):
            drop_table(conn, engine.schema, name)
        state.put(conn, tables, state.LANDING_BATCH, None)
        summary.batch = batch if not summary.unchanged or summary.quarantined else None
        summary.events_total = int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0)
    summary.seconds = time.perf_counter() - started
    if landing.unreadable:
        raise UnreadableSourcesError(landing.unreadable, summary)
    return summary
