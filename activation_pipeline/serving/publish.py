"""Publish the serving copy of an evaluation atomically: build a new version whole, then switch to it.

A version is written where no reader looks (a new DuckDB file, or new `srv<N>_*` tables in PostgreSQL),
indexed, and only then named current, by replacing the pointer file or updating the pointer row in one
transaction. Readers that hold an older version finish on it; the two versions before the current one are
kept for them and older ones are removed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

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


def _build(
    conn: sa.Connection,
    queries: ServingQueries,
    parts: dict[str, sa.TableClause],
    tables: ServingTables,
    published_at: datetime,
) -> Publication:
    schema = tables.lookup.schema
    for table, query in (
        (tables.lookup, queries.lookup()),
        (tables.profiles, queries.profiles(parts)),
        (tables.accounts, queries.accounts()),
        (tables.events, queries.events()),
    ):
        create_table_as(conn, schema, table.name, query)
    create_indexes(conn, tables)
    counts = {
        name: _count(conn, t)
        for name, t in (
            ("p", tables.profiles),
            ("a", tables.accounts),
            ("e", tables.events),
            ("l", tables.lookup),
        )
    }
    tables.publication.create(conn)
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
        tables.version, queries.as_of, published_at, counts["p"], counts["a"], counts["e"], counts["l"]
    )


def _publish_duckdb(
    engine: ComputeEngine, workspace: Workspace, as_of: datetime, published_at: datetime
) -> Publication:
    directory = serving_directory(workspace)
    directory.mkdir(parents=True, exist_ok=True)
    with engine.begin() as conn:
        version = current_version(conn, engine, workspace) + 1
    target = directory / duckdb_file_name(version)
    target.unlink(missing_ok=True)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ATTACH :path AS {ATTACH_ALIAS}"), {"path": str(target)})
        # Point reads of uncompressed columns cost half as much; the file is written (checkpointed) at DETACH.
        conn.execute(sa.text("SET force_compression = 'uncompressed'"))
    parts: dict[str, sa.TableClause] = {}
    try:
        # A DuckDB transaction writes to one database: the work tables first, then the new file.
        with engine.begin() as conn:
            parts = _write_parts(conn, ServingQueries(conn, engine, workspace, as_of))
        with engine.begin() as conn:
            queries = ServingQueries(conn, engine, workspace, as_of)
            tables = serving_tables(version, ATTACH_ALIAS, "")
            publication = _build(conn, queries, parts, tables, published_at)
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
    }
    staging = directory / f"{POINTER_FILE}.{os.getpid()}"
    staging.write_text(json.dumps(pointer))
    os.replace(staging, directory / POINTER_FILE)
    for old in directory.glob("v*.duckdb"):
        number = old.stem[1:]
        if number.isdigit() and int(number) < version - KEEP_PREVIOUS:
            old.unlink(missing_ok=True)
    return publication


def _publish_postgres(
    engine: ComputeEngine, workspace: Workspace, as_of: datetime, published_at: datetime
) -> Publication:
    with engine.begin() as conn:
        version = current_version(conn, engine, workspace) + 1
        queries = ServingQueries(conn, engine, workspace, as_of)
        tables = serving_tables(version, engine.schema, table_prefix(version, on_duckdb=False))
        for table in tables.lookup.metadata.sorted_tables:
            drop_table(conn, engine.schema, table.name)
        parts = _write_parts(conn, queries)
        publication = _build(conn, queries, parts, tables, published_at)
        _drop_parts(conn, engine, parts)
    pointer = pointer_table(engine.schema)
    with engine.begin() as conn:
        conn.execute(sa.delete(pointer))
        conn.execute(sa.insert(pointer).values(version=version, as_of=as_of, published_at=published_at))
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
