"""Publish the serving copy of an evaluation atomically: build a new version whole, then switch to it.

A version is written where no reader looks (a new DuckDB file, or new `srv<N>_*` tables in PostgreSQL),
indexed, and only then named current, by replacing the pointer file or updating the pointer row in one
transaction. Readers that hold an older version finish on it; the two versions before the current one are
kept for them and older ones are removed.

After an incremental evaluation, a version is the previous one (DuckDB: its file, copied; PostgreSQL: its rows,
copied into the new tables) in which only the profiles recomputed since then (`serving_pending`) get new rows,
the events that left the window are removed and the accounts are rebuilt; otherwise (the first version, a full
evaluation, another configuration, predictive traits) it is built whole. Both give the same rows (the test suite
compares them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from activation_pipeline.compute import state
from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.sqlutil import create_table_as, drop_table, table_names
from activation_pipeline.config import Workspace
from activation_pipeline.serving.documents import ServingQueries
from activation_pipeline.serving.layout import (
    POINTER_FILE,
    ServingTables,
    duckdb_file_name,
    pointer_table,
    serving_tables,
    table_prefix,
)

KEEP_PREVIOUS = 2
REBUILD_GROWTH = 1.5
"""DuckDB: a version copied from the previous one is built whole instead once the file grew past this times the
size of the last version built whole (the space of replaced rows is reused only in part)."""
VERSION_TABLE = re.compile(r"^srv(\d+)_")
ATTACH_ALIAS = "serving_new"
PART_PREFIX = "_serving_part_"
"""Work tables in the compute schema holding the per-profile sub-documents while a version is built."""


@dataclass(frozen=True)
class Publication:
    """What one publication wrote: its version, evaluation time, when, and how much."""

    version: int
    as_of: datetime
    published_at: datetime
    profiles: int
    accounts: int
    events: int
    identifiers: int
    mode: str = "full"
    """`full` (built whole) or `incremental` (the previous version with the recomputed profiles replaced)."""


def serving_directory(workspace: Workspace) -> Path:
    """The directory of a workspace's DuckDB serving copies."""
    return workspace.resolve_path(workspace.serving.path)


def read_pointer_file(directory: Path) -> dict[str, object] | None:
    """The DuckDB pointer (version, file, as_of, published_at), or None before the first publication."""
    try:
        return dict(json.loads((directory / POINTER_FILE).read_text()))
    except FileNotFoundError:
        return None


def current_version(conn: sa.Connection, engine: ComputeEngine, workspace: Workspace) -> int:
    """The version readers use now (0 before the first publication)."""
    if engine.is_duckdb:
        named = read_pointer_file(serving_directory(workspace))
        return int(str(named["version"])) if named else 0
    pointer = pointer_table(engine.schema)
    pointer.create(conn, checkfirst=True)
    return int(conn.execute(sa.select(sa.func.max(pointer.c.version))).scalar() or 0)


def _count(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)


def create_indexes(conn: sa.Connection, tables: ServingTables) -> None:
    """Index each table of a version by the key its reads look up."""
    for table, column in (
        (tables.lookup, "key"),
        (tables.profiles, "profile_id"),
        (tables.accounts, "group_id"),
        (tables.events, "profile_id"),
    ):
        sa.Index(f"{table.name}_{column}", table.c[column]).create(conn)


def _write_parts(conn: sa.Connection, queries: ServingQueries) -> dict[str, sa.TableClause]:
    """Write the per-profile sub-documents to work tables in the compute schema, one at a time."""
    parts: dict[str, sa.TableClause] = {}
    for name, query in queries.profile_parts().items():
        create_table_as(conn, queries.engine.schema, PART_PREFIX + name, query)
        columns: list[sa.ColumnClause[Any]] = [sa.column(c.name) for c in query.selected_columns]
        parts[name] = sa.table(PART_PREFIX + name, *columns, schema=queries.engine.schema)
    return parts


def _drop_parts(conn: sa.Connection, engine: ComputeEngine, parts: dict[str, sa.TableClause]) -> None:
    for table in parts.values():
        drop_table(conn, engine.schema, table.name)


def _contents(
    queries: ServingQueries, parts: dict[str, sa.TableClause], tables: ServingTables
) -> list[tuple[sa.Table, sa.Select[Any]]]:
    """Each table of a version with the query of its rows."""
    return [
        (tables.lookup, queries.lookup()),
        (tables.profiles, queries.profiles(parts)),
        (tables.accounts, queries.accounts()),
        (tables.events, queries.events()),
    ]


def _build(
    conn: sa.Connection,
    queries: ServingQueries,
    parts: dict[str, sa.TableClause],
    tables: ServingTables,
    published_at: datetime,
) -> Publication:
    for table, query in _contents(queries, parts, tables):
        create_table_as(conn, tables.lookup.schema, table.name, query)
    create_indexes(conn, tables)
    tables.publication.create(conn)
    return _record(conn, queries, tables, published_at, "full")


def _update(
    conn: sa.Connection,
    queries: ServingQueries,
    parts: dict[str, sa.TableClause],
    tables: ServingTables,
    published_at: datetime,
) -> Publication:
    """Bring a copy of the previous version up to date: new rows for the profiles in `queries.only`."""
    assert queries.only is not None
    for table in (tables.lookup, tables.profiles, tables.events):
        conn.execute(sa.delete(table).where(table.c.profile_id.in_(queries.only)))
    conn.execute(sa.delete(tables.events).where(tables.events.c.timestamp <= queries.events_since()))
    conn.execute(sa.delete(tables.accounts))
    for table, query in _contents(queries, parts, tables):
        conn.execute(sa.insert(table).from_select(list(table.c.keys()), query))
    conn.execute(sa.delete(tables.publication))
    return _record(conn, queries, tables, published_at, "incremental")


def _carry_over(
    conn: sa.Connection,
    queries: ServingQueries,
    parts: dict[str, sa.TableClause],
    tables: ServingTables,
    old: ServingTables,
    published_at: datetime,
) -> Publication:
    """PostgreSQL: a version of the previous one's rows of the profiles not in `queries.only`, and new rows."""
    assert queries.only is not None
    for table, kept in (
        (tables.lookup, old.lookup),
        (tables.profiles, old.profiles),
        (tables.events, old.events),
    ):
        rows = sa.select(kept).where(kept.c.profile_id.not_in(queries.only))
        if table is tables.events:
            rows = rows.where(kept.c.timestamp > queries.events_since())
        create_table_as(conn, tables.lookup.schema, table.name, rows)
    tables.accounts.create(conn)
    tables.publication.create(conn)
    publication = _update(conn, queries, parts, tables, published_at)
    create_indexes(conn, tables)
    return publication


def _record(
    conn: sa.Connection, queries: ServingQueries, tables: ServingTables, published_at: datetime, mode: str
) -> Publication:
    """Write the version's publication row; its figures."""
    counts = {
        name: _count(conn, t)
        for name, t in (
            ("p", tables.profiles),
            ("a", tables.accounts),
            ("e", tables.events),
            ("l", tables.lookup),
        )
    }
    conn.execute(
        sa.insert(tables.publication).values(
            version=tables.version,
            as_of=queries.as_of,
            published_at=published_at,
            profiles=counts["p"],
            events=counts["e"],
        )
    )
    return Publication(
        tables.version, queries.as_of, published_at, counts["p"], counts["a"], counts["e"], counts["l"], mode
    )


def serving_fingerprint(workspace: Workspace) -> str:
    """Digest of what a serving document is built from: a change of it makes the next version a whole one."""
    return state.fingerprint(
        workspace.identity, workspace.normalisation, workspace.traits, workspace.audiences, workspace.serving
    )


def _changed_profiles(
    conn: sa.Connection, engine: ComputeEngine, workspace: Workspace, as_of: datetime, previous: int
) -> sa.Select[Any] | None:
    """The profiles to write again into a copy of version `previous`, or None when it must be built whole."""
    tables = engine.tables
    whole = (
        previous == 0
        or bool(workspace.traits.predictive)  # rescored: every document changes
        or state.flag(conn, tables, state.SERVING_NEEDS_FULL)
        or state.get(conn, tables, state.SERVING_BASIS) != f"{previous}|{serving_fingerprint(workspace)}"
        or state.get_time(conn, tables, state.EVALUATED_AS_OF) != as_of
    )
    return None if whole else sa.select(tables.serving_pending.c.profile_id).distinct()


def _published(conn: sa.Connection, engine: ComputeEngine, workspace: Workspace, version: int) -> None:
    """Note that `version` holds every profile's document as evaluated: nothing is pending for the next."""
    tables = engine.tables
    conn.execute(sa.delete(tables.serving_pending))
    state.set_flag(conn, tables, state.SERVING_NEEDS_FULL, False)
    state.put(conn, tables, state.SERVING_BASIS, f"{version}|{serving_fingerprint(workspace)}")


def _publish_duckdb(
    engine: ComputeEngine, workspace: Workspace, as_of: datetime, published_at: datetime
) -> Publication:
    directory = serving_directory(workspace)
    directory.mkdir(parents=True, exist_ok=True)
    with engine.begin() as conn:
        previous = current_version(conn, engine, workspace)
        only = _changed_profiles(conn, engine, workspace, as_of, previous)
    version = previous + 1
    target = directory / duckdb_file_name(version)
    target.unlink(missing_ok=True)
    source = directory / duckdb_file_name(previous)
    whole_bytes = int(str((read_pointer_file(directory) or {}).get("whole_bytes", 0)))
    if only is not None and source.exists() and source.stat().st_size <= REBUILD_GROWTH * whole_bytes:
        shutil.copyfile(source, target)
    else:
        only = None
    with engine.begin() as conn:
        conn.execute(sa.text(f"ATTACH :path AS {ATTACH_ALIAS}"), {"path": str(target)})
        # Point reads of uncompressed columns cost half as much; the file is written (checkpointed) at DETACH.
        conn.execute(sa.text("SET force_compression = 'uncompressed'"))
    parts: dict[str, sa.TableClause] = {}
    try:
        # A DuckDB transaction writes to one database: the work tables first, then the new file.
        with engine.begin() as conn:
            parts = _write_parts(conn, ServingQueries(conn, engine, workspace, as_of, only))
        with engine.begin() as conn:
            queries = ServingQueries(conn, engine, workspace, as_of, only)
            tables = serving_tables(version, ATTACH_ALIAS, "")
            publication = (_build if only is None else _update)(conn, queries, parts, tables, published_at)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DETACH {ATTACH_ALIAS}"))
            conn.execute(sa.text("RESET force_compression"))
            _drop_parts(conn, engine, parts)
    pointer = {
        "version": version,
        "file": target.name,
        "as_of": as_of.isoformat(),
        "published_at": published_at.isoformat(),
        "whole_bytes": target.stat().st_size if only is None else whole_bytes,
    }
    staging = directory / f"{POINTER_FILE}.{os.getpid()}"
    staging.write_text(json.dumps(pointer))
    os.replace(staging, directory / POINTER_FILE)
    with engine.begin() as conn:
        _published(conn, engine, workspace, version)
    for old in directory.glob("v*.duckdb"):
        number = old.stem[1:]
        if number.isdigit() and int(number) < version - KEEP_PREVIOUS:
            old.unlink(missing_ok=True)
    return publication


def _publish_postgres(
    engine: ComputeEngine, workspace: Workspace, as_of: datetime, published_at: datetime
) -> Publication:
    with engine.begin() as conn:
        previous = current_version(conn, engine, workspace)
        version = previous + 1
        old = serving_tables(previous, engine.schema, table_prefix(previous, on_duckdb=False))
        only = _changed_profiles(conn, engine, workspace, as_of, previous)
        if old.profiles.name not in table_names(conn, engine.schema):
            only = None
        queries = ServingQueries(conn, engine, workspace, as_of, only)
        tables = serving_tables(version, engine.schema, table_prefix(version, on_duckdb=False))
        for table in tables.lookup.metadata.sorted_tables:
            drop_table(conn, engine.schema, table.name)
        parts = _write_parts(conn, queries)
        if only is None:
            publication = _build(conn, queries, parts, tables, published_at)
        else:
            publication = _carry_over(conn, queries, parts, tables, old, published_at)
        _drop_parts(conn, engine, parts)
    pointer = pointer_table(engine.schema)
    with engine.begin() as conn:
        conn.execute(sa.delete(pointer))
        conn.execute(sa.insert(pointer).values(version=version, as_of=as_of, published_at=published_at))
        _published(conn, engine, workspace, version)
    with engine.begin() as conn:
        for name in table_names(conn, engine.schema):
            found = VERSION_TABLE.match(name)
            if found and int(found.group(1)) < version - KEEP_PREVIOUS:
                drop_table(conn, engine.schema, name)
    return publication


def publish_serving_copy(engine: ComputeEngine, workspace: Workspace, as_of: datetime) -> Publication:
    """Write the serving copy of the latest evaluation (as of `as_of`, naive UTC) and make it current."""
    published_at = datetime.now(UTC).replace(tzinfo=None)
    if engine.is_duckdb:
        return _publish_duckdb(engine, workspace, as_of, published_at)
    return _publish_postgres(engine, workspace, as_of, published_at)
