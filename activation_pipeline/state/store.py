"""Opening the state store: SQLite (default, a file) or PostgreSQL, tables created idempotently.

SQLite runs in WAL mode and every writing transaction starts with `BEGIN IMMEDIATE`, so concurrent runs
(threads or processes) serialise their writes instead of failing with "database is locked" on a lock
upgrade; PostgreSQL uses row locks (`SELECT ... FOR UPDATE`) where a read decides a write.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from activation_pipeline.state.schema import metadata

DEFAULT_STATE_FILE = "state/activation_state.db"
READ_ONLY = "ap_read_only"
_SCHEMA_LOCK = 0x61705F7374617465  # "ap_state"


def state_url(location: str | Path) -> str:
    """A SQLAlchemy URL for `location`: URLs pass through, a plain path becomes a SQLite file URL."""
    text = str(location)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _json_dumps(value: Any) -> str:
    """JSON for JSON columns; values JSON cannot hold (dates, decimals) are stored as their text."""
    return json.dumps(value, default=str)


def _configure_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_state_engine(location: str | Path) -> sa.Engine:
    """An engine on the state store at `location` (URL or SQLite file path); creates the SQLite directory."""
    url = sa.make_url(state_url(location))
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"timeout": 60, "check_same_thread": False}, json_serializer=_json_dumps
        )
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, json_serializer=_json_dumps)


class StateStore:
    """The state store: an engine plus transaction helpers; `open_state` creates the tables."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    def create_tables(self) -> None:
        """Create missing tables and indexes (idempotent)."""
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":  # concurrent first runs must not race on CREATE TABLE
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            metadata.create_all(connection, checkfirst=True)

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A writing transaction (SQLite: BEGIN IMMEDIATE), committed on success."""
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read-only transaction (SQLite: a deferred BEGIN, so it never waits for writers in WAL mode)."""
        with self.engine.connect() as connection:
            connection = connection.execution_options(**{READ_ONLY: True})
            with connection.begin():
                yield connection

    def insert(self, table: sa.Table) -> Any:
        """A dialect insert that supports `on_conflict_do_nothing` / `on_conflict_do_update`."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def open_state(location: str | Path = DEFAULT_STATE_FILE) -> StateStore:
    """Open (and create if needed) the state store at a SQLite path or a SQLAlchemy URL."""
    store = StateStore(create_state_engine(location))
    store.create_tables()
    return store
