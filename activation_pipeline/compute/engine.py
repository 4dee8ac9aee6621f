"""The SQL engine the compute layer runs on (DuckDB by default, PostgreSQL), with its schema and tables."""

from __future__ import annotations

import contextlib
import io
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from activation_pipeline.compute.schema import Tables, build_tables, upgrade_tables
from activation_pipeline.compute.sqlutil import quoted_name
from activation_pipeline.config import Workspace
from activation_pipeline.config.secrets import SecretRef
from activation_pipeline.errors import ComputeError


def default_schema(workspace: Workspace) -> str:
    """The compute schema of a workspace: `compute.schema`, else the workspace name made an identifier.

    DuckDB names its catalog after the file, so a schema named like the file's stem would be ambiguous:
    the default then gets a `_data` suffix, and an explicit one is refused.
    """
    stem = Path(workspace.compute.path).stem if workspace.compute.engine == "duckdb" else None
    if workspace.compute.schema_:
        if workspace.compute.schema_ == stem:
            raise ValueError(f"compute.schema '{stem}' is also the DuckDB file's name: choose another schema")
        return workspace.compute.schema_
    name = re.sub(r"[^a-z0-9_]", "_", workspace.workspace.lower())
    name = name if re.match(r"^[a-z_]", name) else f"ws_{name}"
    return f"{name}_data" if name == stem else name


def engine_url(workspace: Workspace) -> str:
    """The SQLAlchemy URL of a workspace's compute engine (the DuckDB file's directory is created)."""
    compute = workspace.compute
    if compute.engine == "duckdb":
        path = workspace.resolve_path(compute.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"duckdb:///{path}"
    url = compute.url
    assert url is not None
    return url.resolve("compute.url") if isinstance(url, SecretRef) else url


@dataclass
class ComputeEngine:
    """A SQLAlchemy engine plus the schema the compute tables live in."""

    url: str
    schema: str
    duckdb_settings: dict[str, str] | None = None
    lock_wait_seconds: float = 300.0
    """How long to wait for a DuckDB file another process holds (another run) before giving up clearly."""
    _engine: sa.Engine | None = field(default=None, init=False, repr=False)
    _ready: bool = field(default=False, init=False, repr=False)
    _tables: Tables | None = field(default=None, init=False, repr=False)

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> ComputeEngine:
        """The compute engine a workspace configures."""
        settings = (
            {"memory_limit": workspace.compute.memory_limit} if workspace.compute.engine == "duckdb" else None
        )
        return cls(url=engine_url(workspace), schema=default_schema(workspace), duckdb_settings=settings)

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (created on first use; `dispose()` closes its pooled connection)."""
        if self._engine is None:
            self._engine = sa.create_engine(
                self.url, poolclass=sa.pool.QueuePool, pool_size=1, max_overflow=4
            )
            if self.is_duckdb and self.duckdb_settings:
                settings = dict(self.duckdb_settings)

                @sa.event.listens_for(self._engine, "connect")
                def _configure(dbapi_connection: Any, _record: object) -> None:
                    for key, value in settings.items():
                        dbapi_connection.execute(f"SET {key} = '{value}'")

        return self._engine

    @property
    def is_duckdb(self) -> bool:
        """True on DuckDB."""
        return self.url.startswith("duckdb")

    @property
    def tables(self) -> Tables:
        """The fixed tables of this schema (one set of Table objects per engine)."""
        if self._tables is None:
            self._tables = build_tables(self.schema)
        return self._tables

    def _enter(self, stack: ExitStack) -> sa.Connection:
        """Open a transaction, waiting (bounded) while another process holds the DuckDB file."""
        deadline = time.monotonic() + self.lock_wait_seconds
        while True:
            try:
                return stack.enter_context(self.engine.begin())
            except sa.exc.OperationalError as error:
                holder = _LOCK_HOLDER.search(str(error.orig)) if self.is_duckdb else None
                if holder is None:
                    raise
                if time.monotonic() >= deadline:
                    raise ComputeBusyError(
                        f"the compute file {self.url.removeprefix('duckdb:///')} is in use by another run "
                        f"(process {holder.group(1)}); waited {self.lock_wait_seconds:g} s: run again when it has "
                        "finished"
                    ) from error
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A connection in a transaction, with the schema and fixed tables created."""
        with ExitStack() as stack:
            conn = self._enter(stack)
            if not self._ready:
                conn.execute(
                    sa.text(
                        f"CREATE SCHEMA IF NOT EXISTS {conn.dialect.identifier_preparer.quote_schema(self.schema)}"
                    )
                )
                self.tables.metadata.create_all(conn)
                upgrade_tables(conn, self.tables)
                self._ready = True
            yield conn

    def dispose(self) -> None:
        """Close the engine (DuckDB has one writer: release the file between assets)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def name(self, conn: sa.Connection, table: str) -> str:
        """A table name of this schema, quoted for raw DDL."""
        return quoted_name(conn, self.schema, table)


class ComputeBusyError(ComputeError):
    """Another run holds the compute file (DuckDB has one writing process at a time)."""


_LOCK_HOLDER = re.compile(r"Could not set lock on file .*?\(PID (\d+)\)", re.S)


@contextmanager
def arrow_view(
    conn: sa.Connection, data: pa.Table, types: dict[str, Any] | None = None
) -> Iterator[sa.TableClause]:
    """An Arrow table as a DuckDB view (read in place, not copied) for the length of the block.

    `types` gives its columns SQL types where a statement needs them.
    """
    raw: Any = conn.connection.driver_connection
    name = f"_arrow_{uuid.uuid4().hex}"
    raw.register(name, data)
    try:
        yield sa.table(name, *[sa.column(c, (types or {}).get(c)) for c in data.column_names])
    except BaseException:
        # After a failed statement DuckDB refuses even the unregister: keep the statement's own error.
        with contextlib.suppress(duckdb.Error):
            raw.unregister(name)
        raise
    raw.unregister(name)


@contextmanager
def duckdb_threads(conn: sa.Connection, threads: int) -> Iterator[None]:
    """DuckDB's worker threads set to `threads` for the statements in the block, then set back."""
    before = int(conn.execute(sa.text("SELECT current_setting('threads')")).scalar_one())
    conn.execute(sa.text(f"SET threads = {int(threads)}"))
    try:
        yield
    finally:
        conn.execute(sa.text(f"SET threads = {before}"))


_SIZE = re.compile(r"^([0-9.]+)\s*(bytes|KiB|MiB|GiB|TiB|KB|MB|GB|TB)$")
_UNITS = {"bytes": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS.update({"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40})


def duckdb_memory_limit(conn: sa.Connection) -> int | None:
    """DuckDB's `memory_limit` in bytes (None if it reads as something else)."""
    text = str(conn.execute(sa.text("SELECT current_setting('memory_limit')")).scalar() or "")
    match = _SIZE.match(text.strip())
    return None if match is None else int(float(match.group(1)) * _UNITS[match.group(2)])


def lower_duckdb_memory(conn: sa.Connection, engine: ComputeEngine, limit: int) -> str:
    """Set DuckDB's memory limit to `limit` bytes (it frees what it cached above); return the limit to set back.

    That is the engine's configured limit (DuckDB reports it rounded), else what DuckDB reported.
    """
    configured = (engine.duckdb_settings or {}).get("memory_limit")
    restore = configured or str(conn.execute(sa.text("SELECT current_setting('memory_limit')")).scalar())
    set_duckdb_memory(conn, f"{max(limit, 0) // 2**20}MiB")
    return restore


def set_duckdb_memory(conn: sa.Connection, size: str) -> None:
    """Set DuckDB's memory limit to a size such as '1.2GB' (checked: SET takes no bound parameter)."""
    if not _SIZE.match(size.strip()):
        raise ValueError(f"DuckDB memory limit {size!r} is not a size")
    conn.execute(sa.text(f"SET memory_limit = '{size.strip()}'"))


@contextmanager
def duckdb_memory(conn: sa.Connection, engine: ComputeEngine, limit: int | None) -> Iterator[None]:
    """DuckDB's memory limit set to `limit` bytes for the statements in the block (None: unchanged), then set back."""
    if limit is None:
        yield
        return
    restore = lower_duckdb_memory(conn, engine, limit)
    try:
        yield
    finally:
        set_duckdb_memory(conn, restore)


def _duckdb_relation(conn: sa.Connection, query: Any) -> Any:
    """A SELECT as a DuckDB relation on the connection's own DuckDB connection (read without a DB-API fetch)."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = [compiled.params[name] for name in compiled.positiontup or []]
    raw: Any = conn.connection.driver_connection
    if hasattr(raw, "complete"):
        # DuckDB 2 refuses new work while the previous statement's (already read) result is open.
        raw.complete()
    return raw.sql(str(compiled), params=params or None)


def duckdb_arrow(conn: sa.Connection, query: Any) -> pa.Table:
    """Run a SELECT on DuckDB and return its result as Arrow, without a row-by-row fetch."""
    result: pa.Table = _duckdb_relation(conn, query).to_arrow_table()
    return result


def duckdb_numpy(conn: sa.Connection, query: Any, rows: int) -> dict[str, np.ndarray[Any, Any]]:
    """Run a SELECT of at most `rows` rows (no NULLs) on DuckDB into one numpy array per column.

    The result streams in batches into arrays allocated once: neither DuckDB nor Arrow holds it whole.
    """
    reader = _duckdb_relation(conn, query).to_arrow_reader(1 << 20)
    arrays = {f.name: np.empty(rows, dtype=f.type.to_pandas_dtype()) for f in reader.schema}
    filled = 0
    for batch in reader:
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            arrays[name][filled : filled + len(batch)] = column.to_numpy(zero_copy_only=False)
        filled += len(batch)
    return {name: array[:filled] for name, array in arrays.items()}


def load_arrow(conn: sa.Connection, table: sa.Table, data: pa.Table) -> int:
    """Append an Arrow table to `table` (columns by name): DuckDB reads it in place, PostgreSQL via COPY."""
    if data.num_rows == 0:
        return 0
    columns = [c for c in data.column_names if c in table.c]
    data = data.select(columns)
    preparer = conn.dialect.identifier_preparer
    target = (
        f"{preparer.quote_schema(table.schema)}.{preparer.quote(table.name)}"
        if table.schema
        else preparer.quote(table.name)
    )
    column_list = ", ".join(preparer.quote(c) for c in columns)
    if conn.dialect.name == "duckdb":
        with arrow_view(conn, data) as view:
            conn.execute(sa.insert(table).from_select(columns, sa.select(*[view.c[c] for c in columns])))
        return data.num_rows
    buffer = io.BytesIO()
    pa_csv.write_csv(
        data, buffer, write_options=pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
    )
    buffer.seek(0)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f"COPY {target} ({column_list}) FROM STDIN WITH (FORMAT csv)", buffer)
    finally:
        cursor.close()
    return data.num_rows
