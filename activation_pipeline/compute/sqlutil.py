"""Dialect-aware SQL pieces shared by the compute modules (DuckDB and PostgreSQL, one definition).

Every construct here is a SQLAlchemy Core expression whose SQL differs per dialect; values and JSON paths
are always bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FunctionElement

from activation_pipeline.config.models import Comparison, Operator

_NUMERIC_RE = r"^\s*[-+]?([0-9]{1,100}\.?[0-9]{0,100}|\.[0-9]{1,100})([eE][-+]?[0-9]{1,2})?\s*$"
"""Numbers PostgreSQL can cast without overflow or underflow (at most 10^199 either way); NaN is not one."""


def _percent_escaping(conn: sa.Connection) -> bool:
    return conn.dialect.paramstyle in ("format", "pyformat")


def literal_sql(conn: sa.Connection, query: Any) -> str:
    """A SQLAlchemy statement as SQL text with its values inline, to run with `run_plain`."""
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    # For %-style drivers the compiler doubles every `%` for parameter formatting; run_plain formats nothing.
    return sql.replace("%%", "%") if _percent_escaping(conn) else sql


def query_plain(conn: sa.Connection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run SQL text exactly as written (a `%` is a `%` whatever the driver): column names and rows."""
    if not _percent_escaping(conn):
        result = conn.exec_driver_sql(sql)
        return (list(result.keys()), [tuple(r) for r in result]) if result.returns_rows else ([], [])
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)  # no parameters: psycopg2 then leaves `%` alone
        if cursor.description is None:
            return [], []
        return [d[0] for d in cursor.description], [tuple(r) for r in cursor.fetchall()]
    finally:
        cursor.close()


def run_plain(conn: sa.Connection, sql: str) -> None:
    """Run SQL text exactly as written (DDL, a user's query), whatever the driver's parameter style."""
    query_plain(conn, sql)


def json_pointer(parts: Sequence[str]) -> str:
    """DuckDB's path to a nested JSON value, as a JSON pointer: unlike `$."key"` it can name any key ("", "\\")."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def path_parts(path: str) -> list[str]:
    """Split a dotted trait/property path (`address.city`) into its keys."""
    return path.split(".")


class JsonText(FunctionElement[str]):
    """The text of a JSON value at a key path (strings unquoted, numbers and booleans as text, else JSON).

    The path is rendered as a SQL string literal quoted by SQLAlchemy (not a bind parameter), so that equal
    expressions compile to equal SQL (GROUP BY matching) and DuckDB sees a constant path.
    """

    type = sa.Text()
    inherit_cache = True
    name = "json_text"

    def __init__(self, column: Any, parts: list[str]) -> None:
        """`column` holds JSON; `parts` are the keys leading to the value."""
        self.parts = tuple(parts)
        super().__init__(column)

    @property
    def _cache_key_parts(self) -> tuple[str, ...]:
        return self.parts


def _literal(compiler: SQLCompiler, value: str) -> str:
    return str(compiler.render_literal_value(value, sa.String()))


@compiles(JsonText, "duckdb")
def _json_text_duckdb(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    path = json_pointer(element.parts)
    return f"json_extract_string({compiler.process(element.clauses, **kw)}, {_literal(compiler, path)})"


@compiles(JsonText)
def _json_text_postgres(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    keys = ", ".join(_literal(compiler, p) for p in element.parts)
    return f"jsonb_extract_path_text({compiler.process(element.clauses, **kw)}, {keys})"


class TryFloat(FunctionElement[float]):
    """A text expression as a double precision number, or NULL when it is not a number."""

    type = sa.Float()
    inherit_cache = True
    name = "try_float"


@compiles(TryFloat, "duckdb")
def _try_float_duckdb(element: TryFloat, compiler: SQLCompiler, **kw: Any) -> str:
    number = f"TRY_CAST({compiler.process(element.clauses, **kw)} AS DOUBLE)"
    return f"(CASE WHEN isfinite({number}) THEN {number} END)"


@compiles(TryFloat)
def _try_float_postgres(element: TryFloat, compiler: SQLCompiler, **kw: Any) -> str:
    inner = compiler.process(element.clauses, **kw)
    pattern = compiler.process(sa.literal(_NUMERIC_RE, sa.Text), **kw)
    return f"(CASE WHEN ({inner}) ~ {pattern} THEN CAST(({inner}) AS DOUBLE PRECISION) END)"


class PickBy(FunctionElement[Any]):
    """Aggregate: the value on the row with the smallest (`first`) or largest order key, among filtered rows."""

    inherit_cache = True
    name = "pick_by"

    def __init__(self, value: Any, order: list[Any], where: Any, *, last: bool) -> None:
        """Pick `value` ordered by the `order` columns (ties broken by later columns) where `where` holds."""
        self.last = last
        self.n_order = len(order)
        self.type = getattr(value, "type", sa.Text())
        super().__init__(value, where, *order)


@compiles(PickBy, "duckdb")
def _pick_by_duckdb(element: PickBy, compiler: SQLCompiler, **kw: Any) -> str:
    value, where, *order = (compiler.process(c, **kw) for c in element.clauses)
    fn = "arg_max" if element.last else "arg_min"
    key = order[0] if len(order) == 1 else f"({', '.join(order)})"
    return f"{fn}({value}, {key}) FILTER (WHERE {where})"


@compiles(PickBy)
def _pick_by_postgres(element: PickBy, compiler: SQLCompiler, **kw: Any) -> str:
    value, where, *order = (compiler.process(c, **kw) for c in element.clauses)
    direction = " DESC" if element.last else ""
    order_sql = ", ".join(f"{o}{direction}" for o in order)
    return f"(array_agg({value} ORDER BY {order_sql}) FILTER (WHERE {where}))[1]"


class SortedUnique(FunctionElement[Any]):
    """Aggregate: the sorted distinct values among filtered rows, at most `limit` of them, as an array."""

    type = sa.ARRAY(sa.Text())
    inherit_cache = True
    name = "sorted_unique"

    def __init__(self, value: Any, where: Any, limit: int) -> None:
        """Distinct `value`s where `where` holds, sorted, first `limit`."""
        self.limit = int(limit)
        super().__init__(value, where)


@compiles(SortedUnique, "duckdb")
def _sorted_unique_duckdb(element: SortedUnique, compiler: SQLCompiler, **kw: Any) -> str:
    value, where = (compiler.process(c, **kw) for c in element.clauses)
    # Sorting the distinct list after aggregating is cheaper than an ordered aggregate (3M profiles: 2.8 vs 3.7 s).
    return f"list_sort(list(DISTINCT {value}) FILTER (WHERE {where}))[1:{element.limit}]"


@compiles(SortedUnique)
def _sorted_unique(element: SortedUnique, compiler: SQLCompiler, **kw: Any) -> str:
    value, where = (compiler.process(c, **kw) for c in element.clauses)
    return f"(array_agg(DISTINCT {value} ORDER BY {value}) FILTER (WHERE {where}))[1:{element.limit}]"


class ArrayContains(FunctionElement[bool]):
    """True when an array holds a value."""

    type = sa.Boolean()
    inherit_cache = True
    name = "array_contains_value"


@compiles(ArrayContains)
def _array_contains(element: ArrayContains, compiler: SQLCompiler, **kw: Any) -> str:
    array, value = (compiler.process(c, **kw) for c in element.clauses)
    return f"(array_position({array}, {value}) IS NOT NULL)"


class CountIf(FunctionElement[int]):
    """Aggregate: how many rows satisfy a condition."""

    type = sa.BigInteger()
    inherit_cache = True
    name = "count_if"


@compiles(CountIf)
def _count_if(element: CountIf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"count(*) FILTER (WHERE {compiler.process(element.clauses, **kw)})"


def agg_where(function: str, value: Any, where: Any) -> ColumnElement[Any]:
    """`function(value) FILTER (WHERE where)` for sum/avg/min/max/count."""
    return sa.funcfilter(getattr(sa.func, function)(value), where)


# ------------------------------------------------------------------------------------------ comparisons


def _as_text(expr: Any) -> ColumnElement[str]:
    if isinstance(getattr(expr, "type", None), sa.String | sa.Text):
        return expr
    return sa.cast(expr, sa.Text)


def _as_number(expr: Any) -> ColumnElement[float]:
    if isinstance(getattr(expr, "type", None), sa.Integer | sa.Float | sa.Numeric):
        return expr
    return TryFloat(_as_text(expr))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _one(op: Operator, expr: Any, value: Any) -> ColumnElement[bool]:
    if isinstance(value, bool):
        text = sa.func.lower(_as_text(expr))
        return (
            text == ("true" if value else "false")
            if op is Operator.EQ
            else text != ("true" if value else "false")
        )
    target = _as_number(expr) if _is_number(value) else _as_text(expr)
    bound = sa.literal(value, sa.Float if _is_number(value) else sa.Text)
    return {
        Operator.EQ: target == bound,
        Operator.NE: target != bound,
        Operator.GT: target > bound,
        Operator.GE: target >= bound,
        Operator.LT: target < bound,
        Operator.LE: target <= bound,
    }[op]


def compare(expr: Any, comparison: Comparison, *, is_list: bool = False) -> ColumnElement[bool]:
    """Compile `expr <op> value`; a missing (NULL) value makes every comparison false except `not_exists`.

    `is_list` marks an array-valued trait (unique_list): `contains`/`in` then test membership.
    """
    op, value = comparison.op, comparison.value
    if op is Operator.EXISTS:
        return expr.isnot(None)
    if op is Operator.NOT_EXISTS:
        return expr.is_(None)
    result: ColumnElement[bool]
    if is_list:
        values = value if isinstance(value, list) else [value]
        hits = [ArrayContains(expr, sa.literal(str(v), sa.Text)) for v in values]
        if op in (Operator.CONTAINS, Operator.IN, Operator.EQ):
            result = sa.or_(*hits)
        elif op in (Operator.NOT_CONTAINS, Operator.NOT_IN, Operator.NE):
            result = sa.and_(expr.isnot(None), sa.not_(sa.or_(*hits)))
        else:
            raise ValueError(f"operator '{op.value}' does not apply to a list trait")
        return sa.func.coalesce(result, sa.false())
    if op in (Operator.IN, Operator.NOT_IN):
        assert isinstance(value, list)
        result = sa.or_(*[_one(Operator.EQ, expr, v) for v in value])
        if op is Operator.NOT_IN:
            result = sa.and_(expr.isnot(None), sa.not_(result))
    elif op in (Operator.CONTAINS, Operator.NOT_CONTAINS, Operator.STARTS_WITH, Operator.ENDS_WITH):
        text = _as_text(expr)
        if op is Operator.STARTS_WITH:
            result = text.startswith(str(value), autoescape=True)
        elif op is Operator.ENDS_WITH:
            result = text.endswith(str(value), autoescape=True)
        else:
            result = text.contains(str(value), autoescape=True)
            if op is Operator.NOT_CONTAINS:
                result = sa.and_(expr.isnot(None), sa.not_(result))
    else:
        result = _one(op, expr, value)
    return sa.func.coalesce(result, sa.false())


# ------------------------------------------------------------------------------------------ DDL helpers


def qualified(schema: str | None, name: str) -> sa.TableClause:
    """A lightweight table reference (no columns) in a schema."""
    return sa.table(name, schema=schema)


class _CreateTableAs(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """CREATE [TEMPORARY] TABLE <name> AS <select>, with the select's parameters bound."""

    inherit_cache = False

    def __init__(self, full_name: str, query: Any, temporary: bool = False) -> None:
        self.full_name = full_name
        self.query = query
        self.temporary = temporary


@compiles(_CreateTableAs)
def _create_table_as(element: _CreateTableAs, compiler: SQLCompiler, **kw: Any) -> str:
    kind = "TEMPORARY TABLE" if element.temporary else "TABLE"
    return f"CREATE {kind} {element.full_name} AS {compiler.process(element.query, **kw)}"


def create_table_as(conn: sa.Connection, schema: str | None, name: str, query: Any) -> None:
    """Replace table `schema.name` with the result of `query` (CREATE TABLE ... AS)."""
    full = quoted_name(conn, schema, name)
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {full}"))
    conn.execute(_CreateTableAs(full, query))


def create_temporary_table_as(conn: sa.Connection, name: str, query: Any) -> sa.TableClause:
    """The result of `query` as a temporary table of this connection (not logged: it is gone at its end)."""
    full = quoted_name(conn, None, name)
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {full}"))
    conn.execute(_CreateTableAs(full, query, temporary=True))
    return sa.table(name, *[sa.column(c.name) for c in query.selected_columns])


def drop_table(conn: sa.Connection, schema: str | None, name: str) -> None:
    """Drop a table if it exists."""
    preparer = conn.dialect.identifier_preparer
    full = (
        preparer.quote(name) if schema is None else f"{preparer.quote_schema(schema)}.{preparer.quote(name)}"
    )
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {full}"))


def quoted_name(conn: sa.Connection, schema: str | None, name: str) -> str:
    """`schema.name` quoted for this dialect."""
    preparer = conn.dialect.identifier_preparer
    return (
        preparer.quote(name) if schema is None else f"{preparer.quote_schema(schema)}.{preparer.quote(name)}"
    )


_COLUMNS_SQL = (
    "SELECT column_name FROM information_schema.columns "
    "WHERE table_name = :name AND table_schema = :schema ORDER BY ordinal_position"
)


def table_columns(conn: sa.Connection, schema: str, name: str) -> list[str]:
    """Column names of a table or view, in order (via information_schema: works on DuckDB and PostgreSQL)."""
    return [r[0] for r in conn.execute(sa.text(_COLUMNS_SQL), {"name": name, "schema": schema})]


def table_names(conn: sa.Connection, schema: str) -> set[str]:
    """Names of the tables and views in a schema."""
    query = sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema")
    return {r[0] for r in conn.execute(query, {"schema": schema})}


class ProfileIdHash(FunctionElement[int]):
    """The profile id an identifier creates: the first 63 bits of md5(type U+001F value), as in Python."""

    type = sa.BigInteger()
    inherit_cache = True
    name = "profile_id_hash"


@compiles(ProfileIdHash, "duckdb")
def _profile_id_duckdb(element: ProfileIdHash, compiler: SQLCompiler, **kw: Any) -> str:
    kind, value = (compiler.process(c, **kw) for c in element.clauses)
    digest = f"md5({kind} || chr(31) || {value})"
    return f"((('0x' || substr({digest}, 1, 16))::UBIGINT & 9223372036854775807::UBIGINT)::BIGINT)"


@compiles(ProfileIdHash)
def _profile_id_postgres(element: ProfileIdHash, compiler: SQLCompiler, **kw: Any) -> str:
    kind, value = (compiler.process(c, **kw) for c in element.clauses)
    digest = f"md5({kind} || chr(31) || {value})"
    return f"((('x' || substr({digest}, 1, 16))::bit(64)::bigint) & 9223372036854775807)"


def rename_table(conn: sa.Connection, schema: str, old: str, new: str) -> None:
    """Rename table `schema.old` to `new`, replacing any table named `new`."""
    drop_table(conn, schema, new)
    conn.execute(
        sa.text(
            f"ALTER TABLE {quoted_name(conn, schema, old)} RENAME TO {conn.dialect.identifier_preparer.quote(new)}"
        )
    )
