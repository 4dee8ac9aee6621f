"""SQL traits: the user's query on the warehouse (or on the compute engine's Segment-layout views), mapped to
profiles by the configured identifier. Each SQL trait gets a table `sqlt_<key>` (profile_id or group_id, then
one column per trait key). SQL traits are always recomputed; profiles whose values changed are passed on to
the audience stage through `pending_affected`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.incremental import note_changed_profiles, require_identity, stage_done
from activation_pipeline.compute.scratch import scratch_table
from activation_pipeline.compute.sources import segment_table_name
from activation_pipeline.compute.sqlutil import (
    JsonText,
    TryFloat,
    create_table_as,
    drop_table,
    literal_sql,
    query_plain,
    run_plain,
    table_columns,
)
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import (
    AllCondition,
    AnyCondition,
    EventCondition,
    NotCondition,
    SqlTrait,
)
from activation_pipeline.config.secrets import SecretRef
from activation_pipeline.errors import ComputeError

_RESERVED_VIEWS = frozenset(
    {"identifies", "tracks", "groups", "aliases", "pages", "screens", "users", "accounts"}
)
_VIEW_META = (
    "id",
    "user_id",
    "anonymous_id",
    "timestamp",
    "received_at",
    "event",
    "event_text",
    "group_id",
    "previous_id",
)


class SqlTraitError(ComputeError, RuntimeError):
    """A SQL trait's query is unusable (missing columns, or several rows for one profile)."""


@dataclass(frozen=True)
class SqlTraitSummary:
    """Counts from one SQL trait run."""

    traits: int
    rows: int
    mapped: int
    unmatched: int
    changed: int
    views: int


class JsonKeys(FunctionElement[str]):
    """Set-returning: the top-level keys of a JSON object, one row each."""

    type = sa.Text()
    inherit_cache = True
    name = "json_keys_rows"


@compiles(JsonKeys, "duckdb")
def _json_keys_duckdb(element: JsonKeys, compiler: SQLCompiler, **kw: Any) -> str:
    return f"unnest(json_keys({compiler.process(element.clauses, **kw)}))"


@compiles(JsonKeys)
def _json_keys_postgres(element: JsonKeys, compiler: SQLCompiler, **kw: Any) -> str:
    return f"jsonb_object_keys({compiler.process(element.clauses, **kw)})"


def segment_schema(engine: ComputeEngine) -> str:
    """The schema holding the Segment-layout views of the compute engine."""
    return f"{engine.schema}_segment"


def _scalar_columns(conn: sa.Connection, json_col: Any, where: Any, source: Any) -> list[tuple[str, str]]:
    """(key, kind) of the top-level keys seen under `where`; kind is number, boolean or text (objects skipped)."""
    keys = sorted(
        k
        for (k,) in conn.execute(
            sa.select(JsonKeys(json_col).label("k")).select_from(source).where(where).distinct()
        )
        if k is not None
    )
    if not keys:
        return []
    stats = []
    for key in keys:
        text = JsonText(json_col, [key])
        stats += [
            sa.func.count(text),
            sa.func.count(TryFloat(text)),
            sa.func.count(sa.case((sa.func.lower(text).in_(["true", "false"]), 1))),
            sa.func.count(sa.case((sa.or_(text.startswith("{"), text.startswith("[")), 1))),
        ]
    row = conn.execute(sa.select(*stats).select_from(source).where(where)).one()
    found = []
    for i, key in enumerate(keys):
        total, numbers, booleans, nested = row[4 * i : 4 * i + 4]
        if total == 0 or nested == total:
            continue
        kind = "number" if numbers == total else "boolean" if booleans == total else "text"
        found.append((key, kind))
    return found


def _column(json_col: Any, key: str, kind: str) -> Any:
    text = JsonText(json_col, [key])
    if kind == "number":
        return TryFloat(text)
    if kind == "boolean":
        return sa.func.lower(text) == "true"
    return text


def referenced_properties(workspace: Workspace) -> dict[str, set[str]]:
    """Event name -> top-level properties the workspace's computed traits and event conditions use."""
    found: dict[str, set[str]] = {}
    for trait in workspace.traits.computed:
        props = found.setdefault(trait.event, set())
        prop = getattr(trait, "property", None)
        if prop:
            props.add(prop.split(".")[0])
        props.update(f.property.split(".")[0] for f in trait.where)
    for audience in workspace.audiences:
        stack: list[Any] = [audience.where]
        while stack:
            node = stack.pop()
            if isinstance(node, AllCondition | AnyCondition):
                stack.extend(node.all if isinstance(node, AllCondition) else node.any)
            elif isinstance(node, NotCondition):
                stack.append(node.not_)
            elif isinstance(node, EventCondition):
                found.setdefault(node.event, set()).update(f.property.split(".")[0] for f in node.where)
    return found


def build_segment_views(
    conn: sa.Connection, engine: ComputeEngine, workspace: Workspace, as_of: datetime
) -> int:
    """(Re)create Segment's warehouse layout over the landed events up to `as_of`; return the view count."""
    tables = engine.tables
    e = tables.events.c
    schema = segment_schema(engine)
    preparer = conn.dialect.identifier_preparer
    conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {preparer.quote_schema(schema)} CASCADE"))
    conn.execute(sa.text(f"CREATE SCHEMA {preparer.quote_schema(schema)}"))
    source = tables.events
    in_time = e.timestamp <= as_of
    base = [e.message_id.label("id"), e.user_id, e.anonymous_id, e.timestamp, e.received_at]
    views: dict[str, sa.Select[Any]] = {}

    def extra(json_col: Any, where: Any) -> list[Any]:
        # Keys that map to one column name ("Plan" and "plan", "" and "\\"): the first in key order wins.
        columns: dict[str, Any] = {}
        for key, kind in _scalar_columns(conn, json_col, where, source):
            name = segment_table_name(key)
            if name not in _VIEW_META and name not in columns:
                columns[name] = _column(json_col, key, kind).label(name)
        return list(columns.values())

    is_identify, is_group = sa.and_(in_time, e.type == "identify"), sa.and_(in_time, e.type == "group")
    views["identifies"] = sa.select(*base, *extra(e.traits, is_identify)).where(is_identify)
    views["groups"] = sa.select(*base, e.group_id, *extra(e.traits, is_group)).where(is_group)
    is_alias = sa.and_(in_time, e.type == "alias")
    views["aliases"] = sa.select(*base, e.previous_id).where(is_alias)
    is_track = sa.and_(in_time, e.type == "track")
    names = [n for (n,) in conn.execute(sa.select(e.event).where(is_track).distinct()) if n]
    event_cases = [(e.event == n, segment_table_name(n)) for n in sorted(names)]
    snake = sa.case(*event_cases, else_=e.event) if event_cases else e.event
    views["tracks"] = sa.select(*base, snake.label("event"), e.event.label("event_text")).where(is_track)
    referenced = referenced_properties(workspace)
    for name in sorted(set(names) | set(referenced)):
        view = segment_table_name(name)
        if view in _RESERVED_VIEWS or view in views:
            continue
        where = sa.and_(is_track, e.event == name)
        columns = extra(e.properties, where) if name in names else []
        present = {c.name for c in columns}
        for prop in sorted(referenced.get(name, set())):
            if (column := segment_table_name(prop)) not in present and column not in _VIEW_META:
                columns.append(TryFloat(JsonText(e.properties, [prop])).label(column))
        views[view] = sa.select(
            *base, sa.literal(view, sa.Text).label("event"), e.event.label("event_text"), *columns
        ).where(where)
    for view, query in views.items():
        name = f"{preparer.quote_schema(schema)}.{preparer.quote(view)}"
        run_plain(conn, f"CREATE VIEW {name} AS {literal_sql(conn, query)}")
    return len(views)


def _query_text(workspace: Workspace, trait: SqlTrait) -> str:
    text = workspace.resolve_path(trait.query).read_text(encoding="utf-8") if trait.is_file else trait.query
    text = text.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    try:
        statements = len(duckdb.extract_statements(text))
    except duckdb.Error:
        statements = 1  # another dialect (a warehouse's): the database itself judges it
    if statements != 1:
        raise SqlTraitError(
            f"SQL trait '{trait.key}': the query must be one SELECT statement, not {statements}"
        )
    return text


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, date | datetime | int | float | str | bool) or value is None:
        return value
    return str(value)


def _run_query(
    conn: sa.Connection, engine: ComputeEngine, workspace: Workspace, trait: SqlTrait, raw_name: str
) -> list[str]:
    """Run the trait's query into table `raw_name`; return its column names."""
    query = _query_text(workspace, trait)
    preparer = conn.dialect.identifier_preparer
    if workspace.sources.warehouse is None:
        schema = segment_schema(engine)
        drop_table(conn, engine.schema, raw_name)
        if conn.dialect.name == "duckdb":
            conn.exec_driver_sql(f"SET search_path = '{schema}'")
        else:
            conn.exec_driver_sql(f"SET LOCAL search_path TO {preparer.quote_schema(schema)}")
        try:
            run_plain(conn, f"CREATE TABLE {engine.name(conn, raw_name)} AS {query}")
        except sa.exc.DBAPIError as error:
            raise SqlTraitError(f"SQL trait '{trait.key}': the query failed: {error.orig}") from error
        conn.exec_driver_sql("RESET search_path")
    else:
        url = workspace.sources.warehouse.url
        url = url.resolve("sources.warehouse.url") if isinstance(url, SecretRef) else url
        warehouse = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with warehouse.connect() as wconn:
                try:
                    names, found = query_plain(wconn, query)
                except sa.exc.DBAPIError as error:
                    raise SqlTraitError(f"SQL trait '{trait.key}': the query failed: {error.orig}") from error
                rows = [[_plain(v) for v in r] for r in found]
        finally:
            warehouse.dispose()
        data = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}) if rows else None
        if data is None:
            data = pa.table({n: pa.array([], pa.string()) for n in names})
        data = data.cast(
            pa.schema(
                [pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in data.schema]
            )
        )
        scratch_table(conn, engine.schema, raw_name, data)
    return table_columns(conn, engine.schema, raw_name)


def _float_columns(conn: sa.Connection, schema: str, table: str) -> set[str]:
    columns = sa.table("columns", sa.column("column_name"), sa.column("data_type"), sa.column("table_name"),
                       sa.column("table_schema"), schema="information_schema")  # fmt: skip
    query = sa.select(columns.c.column_name).where(
        columns.c.table_schema == schema,
        columns.c.table_name == table,
        sa.func.lower(columns.c.data_type).in_(["double", "float", "real", "double precision"]),
    )
    return {r[0] for r in conn.execute(query)}


def _finite(column: Any) -> Any:
    """A float column with NaN and infinities made NULL: no payload may carry them (both engines order NaN
    above every number, so the range test leaves it out)."""
    biggest = sys.float_info.max
    return sa.case((column.between(-biggest, biggest), column), else_=sa.null())


def _identifier_expr(column: Any, identifier: str) -> Any:
    text = sa.func.trim(sa.cast(column, sa.Text))
    return sa.func.lower(text) if identifier == "email" else text


def compute_sql_traits(engine: ComputeEngine, workspace: Workspace, as_of: datetime) -> SqlTraitSummary:
    """Run every SQL trait as of `as_of` (rows mapped to profiles; duplicates raise SqlTraitError)."""
    tables = engine.tables
    totals = {"rows": 0, "mapped": 0, "changed": 0}
    views = 0
    with engine.begin() as conn:
        require_identity(conn, engine, as_of)
        if workspace.sources.warehouse is None and workspace.traits.sql:
            views = build_segment_views(conn, engine, workspace, as_of)
        for trait in workspace.traits.sql:
            raw_name = f"_sqlraw_{trait.key}"
            columns = _run_query(conn, engine, workspace, trait, raw_name)
            key_column = "group_id" if trait.level == "account" else trait.identifier
            missing = [c for c in [key_column, *trait.trait_keys] if c not in columns]
            if missing:
                drop_table(conn, engine.schema, raw_name)
                raise SqlTraitError(
                    f"SQL trait '{trait.key}': the query returns no column {', '.join(repr(m) for m in missing)} "
                    f"(it returns {', '.join(columns)})"
                )
            raw = sa.table(raw_name, *[sa.column(c) for c in columns], schema=engine.schema)
            floats = _float_columns(conn, engine.schema, raw_name)
            values = [(_finite(raw.c[k]) if k in floats else raw.c[k]).label(k) for k in trait.trait_keys]
            if trait.level == "account":
                key = sa.cast(raw.c.group_id, sa.Text)
                mapped = sa.select(key.label("group_id"), *values).where(raw.c.group_id.isnot(None))
                key_name = "group_id"
            else:
                i = tables.identities
                mapped = (
                    sa.select(i.c.profile_id, *values)
                    .select_from(
                        raw.join(
                            i,
                            sa.and_(
                                i.c.identifier_type == trait.identifier,
                                i.c.value == _identifier_expr(raw.c[trait.identifier], trait.identifier),
                            ),
                        )
                    )
                    .where(i.c.profile_id.isnot(None))
                )
                key_name = "profile_id"
            new_name, final_name = f"sqlt_{trait.key}__new", f"sqlt_{trait.key}"
            create_table_as(conn, engine.schema, new_name, mapped)
            new = sa.table(
                new_name, sa.column(key_name), *[sa.column(k) for k in trait.trait_keys], schema=engine.schema
            )
            dupes = conn.execute(
                sa.select(new.c[key_name], sa.func.count().label("n"))
                .group_by(new.c[key_name])
                .having(sa.func.count() > 1)
                .order_by(sa.func.count().desc(), new.c[key_name])
            ).all()
            if dupes:
                drop_table(conn, engine.schema, new_name)
                drop_table(conn, engine.schema, raw_name)
                sample = ", ".join(f"{key_name} {d[0]} ({d[1]} rows)" for d in dupes[:5])
                raise SqlTraitError(
                    f"SQL trait '{trait.key}': {len(dupes)} {'accounts' if key_name == 'group_id' else 'profiles'} "
                    f"have more than one row, e.g. {sample}"
                )
            raw_rows = int(conn.execute(sa.select(sa.func.count()).select_from(raw)).scalar() or 0)
            mapped_rows = int(conn.execute(sa.select(sa.func.count()).select_from(new)).scalar() or 0)
            totals["rows"] += raw_rows
            totals["mapped"] += mapped_rows
            if trait.level == "user":
                totals["changed"] += note_changed_profiles(
                    conn, engine, new_name, final_name, trait.trait_keys
                )
            drop_table(conn, engine.schema, final_name)
            conn.execute(
                sa.text(
                    f"ALTER TABLE {engine.name(conn, new_name)} RENAME TO {conn.dialect.identifier_preparer.quote(final_name)}"
                )
            )
            drop_table(conn, engine.schema, raw_name)
        stage_done(conn, engine, "sql_traits", as_of)
    return SqlTraitSummary(
        traits=len(workspace.traits.sql),
        rows=totals["rows"],
        mapped=totals["mapped"],
        unmatched=totals["rows"] - totals["mapped"],
        changed=totals["changed"],
        views=views,
    )
