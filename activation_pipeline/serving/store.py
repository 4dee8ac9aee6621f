"""Reading the serving copy: follow the pointer to the current version and answer indexed point reads.

Every request takes one `ServingVersion` and does all its reads on it, so it sees one evaluation whole even
while the next one is published. DuckDB versions are opened read-only (a file no writer touches after it is
published); each thread gets its own cursor. PostgreSQL versions are tables in the compute schema.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.config import Workspace
from activation_pipeline.serving.keys import KeyIndex, Probe, key_hash_sql
from activation_pipeline.serving.layout import (
    KEY_SEPARATOR,
    POINTER_FILE,
    PROFILE_PREFIX,
    ServingTables,
    pointer_table,
    serving_tables,
    table_prefix,
)
from activation_pipeline.serving.publish import read_pointer_file, serving_directory

POSTGRES_POINTER_SECONDS = 1.0
"""How long a PostgreSQL reader trusts the pointer it read before asking again (versions outlive this)."""


class NotPublishedError(RuntimeError):
    """No evaluation has published a serving copy yet."""


@dataclass(frozen=True)
class VersionInfo:
    """Which version a reader is on, and the evaluation time it holds."""

    version: int
    as_of: datetime


@dataclass(frozen=True)
class Document:
    """A profile's (or account's) id and its published document: traits by class, ids, links."""

    id: Any
    doc: dict[str, Any]


class _Executor(Protocol):
    def rows(self, statement: sa.Executable, params: dict[str, Any]) -> list[Any]: ...


class InMemoryDocuments:
    """A DuckDB version's profile documents and events held in memory (Arrow), found by binary search on
    sorted profile ids: a profile read costs microseconds instead of a query (about a millisecond, most of it
    DuckDB's fixed cost per statement)."""

    def __init__(self, profiles: pa.Table, events: pa.Table) -> None:
        """`profiles` (profile_id, doc) and `events` (profile_id, ...), each sorted by profile_id."""
        self._profile_ids = profiles.column("profile_id").to_numpy()
        self._docs = profiles.column("doc").combine_chunks()
        self._event_owner = events.column("profile_id").to_numpy()
        self._events = events.combine_chunks()

    def doc(self, profile_id: int) -> str | None:
        """A profile's document text, or None."""
        i = int(np.searchsorted(self._profile_ids, profile_id))
        if i == len(self._profile_ids) or self._profile_ids[i] != profile_id:
            return None
        return str(self._docs[i].as_py())

    def events(self, profile_id: int) -> list[Any]:
        """A profile's events (rows with attribute access, as a query's)."""
        first = int(np.searchsorted(self._event_owner, profile_id, side="left"))
        last = int(np.searchsorted(self._event_owner, profile_id, side="right"))
        rows = self._events.slice(first, last - first)
        columns = rows.column_names
        return [_Row(columns, list(values.values())) for values in rows.to_pylist()]


class ServingVersion:
    """Reads of one published version."""

    def __init__(
        self,
        tables: ServingTables,
        executor: _Executor,
        publication: VersionInfo,
        keys: KeyIndex | None = None,
        documents: InMemoryDocuments | None = None,
    ) -> None:
        self.tables = tables
        self.publication = publication
        self._executor = executor
        self._keys = keys
        self._documents = documents
        lookup, profiles, accounts, events = tables.lookup, tables.profiles, tables.accounts, tables.events
        # Point reads by one indexed column each: on DuckDB two of them cost less than one join.
        self._profile_id = sa.select(lookup.c.profile_id).where(lookup.c.key == sa.bindparam("key"))
        self._profile_by_id = sa.select(profiles).where(profiles.c.profile_id == sa.bindparam("profile_id"))
        self._account_by_id = sa.select(accounts).where(accounts.c.group_id == sa.bindparam("group_id"))
        self._events_of = sa.select(events).where(events.c.profile_id == sa.bindparam("profile_id"))

    def profile(self, key: str) -> Document | None:
        """The surviving profile's document for a lookup key (`type:value` or `use_<id>`), or None."""
        if self._keys is not None:
            probed = self._keys.probe(key)
            if probed is Probe.ABSENT:
                return None
            if isinstance(probed, int):
                found = self._profile(probed)
                if found is not None and _holds(found, key):
                    return found
        rows = self._executor.rows(self._profile_id, {"key": key})
        return self._profile(rows[0].profile_id) if rows else None

    def _profile(self, profile_id: int) -> Document | None:
        if self._documents is not None:
            text = self._documents.doc(profile_id)
            return None if text is None else Document(profile_id, json.loads(text))
        rows = self._executor.rows(self._profile_by_id, {"profile_id": profile_id})
        return Document(rows[0].profile_id, json.loads(rows[0].doc)) if rows else None

    def account(self, group_id: str) -> Document | None:
        """An account's document, or None."""
        found = self._executor.rows(self._account_by_id, {"group_id": group_id})
        return Document(found[0].group_id, json.loads(found[0].doc)) if found else None

    def profiles(self, profile_ids: Sequence[int]) -> list[Document]:
        """The documents of several profiles (for an account's links)."""
        return [doc for doc in map(self._profile, profile_ids) if doc is not None]

    def events(self, profile_id: int) -> list[Any]:
        """Every event the serving copy holds for a profile (the last `serving.events_days` days), unordered."""
        if self._documents is not None:
            return self._documents.events(profile_id)
        return self._executor.rows(self._events_of, {"profile_id": profile_id})


def _holds(profile: Document, key: str) -> bool:
    """Whether a profile's document carries the lookup key (its id, or one of its external ids)."""
    if key.startswith(PROFILE_PREFIX):
        return str(profile.id) == key[len(PROFILE_PREFIX) :]
    kind, _, value = key.partition(KEY_SEPARATOR)
    return any(e["type"] == kind and e["id"] == value for e in profile.doc.get("external_ids") or ())


class _DuckDbExecutor:
    """Runs SQLAlchemy statements, compiled once each, on per-thread cursors of a read-only DuckDB file."""

    def __init__(self, path: Path) -> None:
        self.dialect = sa.create_engine("duckdb://").dialect
        self._connection = duckdb.connect(str(path), read_only=True)
        self._local = threading.local()
        # More concurrent queries than cores make DuckDB slower in total, not faster: the rest wait here.
        self._slots = threading.BoundedSemaphore(os.cpu_count() or 2)
        # Keyed by id(); the statement is kept in the value so that no other object can take its id.
        self._compiled: dict[int, tuple[sa.Executable, str, list[str]]] = {}

    def _cursor(self) -> Any:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._connection.cursor()
        return cursor

    def _compile(self, statement: sa.Executable) -> tuple[str, list[str]]:
        compiled = statement.compile(dialect=self.dialect)  # type: ignore[attr-defined]
        return str(compiled), list(compiled.positiontup or [])

    def rows(self, statement: sa.Executable, params: dict[str, Any]) -> list[Any]:
        """The rows of a SELECT with named bind parameters (each statement is compiled once)."""
        cached = self._compiled.get(id(statement))
        if cached is None:
            cached = self._compiled[id(statement)] = (statement, *self._compile(statement))
        _, sql, names = cached
        cursor = self._cursor()
        with self._slots:
            cursor.execute(sql, [params[n] for n in names])
            columns = [d[0] for d in cursor.description]
            found = cursor.fetchall()
        return [_Row(columns, r) for r in found]

    def warm(self, tables: ServingTables) -> None:
        """Read the tables requests still query (lookup, accounts) once, so the first requests find them in memory;
        profiles and events are read into `documents` instead."""
        for table in (tables.lookup, tables.accounts):
            lengths = [sa.func.max(sa.func.length(sa.cast(c, sa.Text))) for c in table.c]
            self.rows(sa.select(sa.func.count(), *lengths).select_from(table), {})

    def documents(self, tables: ServingTables) -> InMemoryDocuments:
        """The version's profile documents and events in memory, sorted by profile id."""
        loaded = []
        for table in (tables.profiles, tables.events):
            query = sa.select(table).order_by(table.c.profile_id)
            sql = str(query.compile(dialect=self.dialect))
            with self._slots:
                loaded.append(self._cursor().sql(sql).to_arrow_table())
        return InMemoryDocuments(*loaded)

    def key_index(self, lookup: sa.Table) -> KeyIndex:
        """The in-memory key index of a version's lookup table."""
        query = sa.select(key_hash_sql(lookup.c.key).label("h"), lookup.c.profile_id)
        sql = str(query.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))
        with self._slots:
            arrays = self._cursor().execute(sql).fetchnumpy()
        return KeyIndex(
            np.asarray(arrays["h"], dtype=np.int64), np.asarray(arrays["profile_id"], dtype=np.int64)
        )

    def close(self) -> None:
        """Close the file (cursors of finished requests go with it)."""
        self._connection.close()


class _Row:
    """A result row with attribute access by column name."""

    __slots__ = ("_index", "_values")

    def __init__(self, columns: list[str], values: Sequence[Any]) -> None:
        self._index = {c: i for i, c in enumerate(columns)}
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[self._index[name]]
        except KeyError as error:
            raise AttributeError(name) from error


class _PostgresExecutor:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def rows(self, statement: sa.Executable, params: dict[str, Any]) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(statement, params).all())


class ServingReader(Protocol):
    """Gives each request the current version."""

    def current(self) -> ServingVersion: ...

    def close(self) -> None: ...


class DuckDbReader:
    """Follows `CURRENT` in the serving directory; a new version is opened as soon as it is named."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._version: ServingVersion | None = None
        self._open: list[tuple[ServingVersion, _DuckDbExecutor]] = []

    def _pointer_stamp(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.directory / POINTER_FILE)
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_mtime_ns

    def current(self) -> ServingVersion:
        """The version named now; while a newly named one is being opened, the one before it."""
        stamp = self._pointer_stamp()
        # Only the first request waits for a version; later ones go on with the current one meanwhile.
        if stamp is not None and stamp != self._stamp and self._lock.acquire(blocking=self._version is None):
            try:
                if stamp != self._stamp:
                    self._switch(stamp)
            finally:
                self._lock.release()
        if self._version is None:
            raise NotPublishedError("no evaluation has published a serving copy yet")
        return self._version

    def _switch(self, stamp: tuple[int, int]) -> None:
        pointer = read_pointer_file(self.directory)
        if pointer is None:
            return
        version = int(str(pointer["version"]))
        executor = _DuckDbExecutor(self.directory / str(pointer["file"]))
        publication = VersionInfo(version, datetime.fromisoformat(str(pointer["as_of"])))
        tables = serving_tables(version, None, "")
        executor.warm(tables)
        opened = ServingVersion(
            tables, executor, publication, executor.key_index(tables.lookup), executor.documents(tables)
        )
        self._version, self._stamp = opened, stamp
        self._open.append((opened, executor))
        # Requests still on the version before keep it; older ones have finished long ago.
        while len(self._open) > 2:
            _, old = self._open.pop(0)
            old.close()

    def close(self) -> None:
        """Close every open version."""
        for _, executor in self._open:
            executor.close()
        self._open.clear()


class PostgresReader:
    """Reads the pointer row (at most once a second) and the `srv<N>_*` tables it names."""

    def __init__(self, url: str, schema: str) -> None:
        self.engine = sa.create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)
        self.schema = schema
        self._pointer = pointer_table(schema)
        self._lock = threading.Lock()
        self._checked = 0.0
        self._version: ServingVersion | None = None

    def current(self) -> ServingVersion:
        """The version named by the pointer row, re-read when the last read is over a second old."""
        now = time.monotonic()
        if now - self._checked > POSTGRES_POINTER_SECONDS:
            with self._lock:
                if now - self._checked > POSTGRES_POINTER_SECONDS:
                    self._refresh()
                    self._checked = now
        if self._version is None:
            raise NotPublishedError("no evaluation has published a serving copy yet")
        return self._version

    def _refresh(self) -> None:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(self._pointer.name, schema=self.schema):
                return
            row = conn.execute(sa.select(self._pointer.c.version, self._pointer.c.as_of)).first()
        if row is None or (self._version is not None and self._version.publication.version == row.version):
            return
        tables = serving_tables(row.version, self.schema, table_prefix(row.version, on_duckdb=False))
        self._version = ServingVersion(
            tables, _PostgresExecutor(self.engine), VersionInfo(row.version, row.as_of)
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.engine.dispose()


def open_reader(workspace: Workspace) -> ServingReader:
    """The reader of a workspace's serving copy, on the engine its evaluations publish to."""
    compute = ComputeEngine.for_workspace(workspace)
    if compute.is_duckdb:
        return DuckDbReader(serving_directory(workspace))
    return PostgresReader(compute.url, compute.schema)
