"""JSON building blocks for the serving copy, named per dialect (DuckDB and PostgreSQL spell them differently)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by

_OBJECT = {"duckdb": "json_object", "postgresql": "json_build_object"}
_GROUP_OBJECT = {"postgresql": "json_object_agg"}
_GROUP_ARRAY = {"postgresql": "json_agg"}
_PAIRS_PER_CALL = 40
"""PostgreSQL functions take at most 100 arguments: wider objects are built in parts and merged."""


def _call(names: dict[str, str], dialect: str, *args: Any) -> Any:
    return getattr(sa.func, names[dialect])(*args)


def _key(name: str) -> sa.ColumnElement[str]:
    return sa.cast(sa.literal(name), sa.Text)


def json_object(dialect: str, pairs: Sequence[tuple[str, Any]]) -> sa.ColumnElement[Any]:
    """A JSON object of (key, value) pairs (null values included); `{}` when there are none."""
    if not pairs:
        return _call(_OBJECT, dialect)
    parts = [
        _call(
            _OBJECT,
            dialect,
            *[arg for key, value in pairs[i : i + _PAIRS_PER_CALL] for arg in (_key(key), value)],
        )
        for i in range(0, len(pairs), _PAIRS_PER_CALL)
    ]
    merged = parts[0]
    for part in parts[1:]:
        if dialect == "postgresql":
            merged = sa.cast(merged, JSONB).op("||")(sa.cast(part, JSONB))
        else:
            merged = sa.func.json_merge_patch(merged, part)
    return merged


def json_text(value: Any) -> sa.ColumnElement[str]:
    """A JSON value as its text, to store."""
    return sa.cast(value, sa.Text)


def _duckdb_json(value: Any) -> Any:
    """DuckDB: a value as JSON text (`null` for NULL), as its `json_group_*` macros write each element."""
    return sa.func.coalesce(sa.func.to_json(value), sa.cast(sa.literal("null"), sa.Text))


def _duckdb_joined(open_: str, elements: Any, close: str, first: Any, *then: Any) -> Any:
    """DuckDB: `open_`, the group's element texts joined by commas in order, `close`, as JSON."""
    joined = sa.func.string_agg(elements, aggregate_order_by(sa.literal(","), first, *then))
    return sa.cast(sa.literal(open_) + joined + sa.literal(close), sa.JSON)


def json_group_object(dialect: str, key: Any, value: Any) -> sa.ColumnElement[Any]:
    """Aggregate: a JSON object of key -> value over the group, keys in order (the same text every time)."""
    if dialect == "duckdb":  # its json_group_object is a macro, which takes no ORDER BY
        entry = sa.func.to_json(sa.cast(key, sa.Text)) + sa.literal(":") + _duckdb_json(value)
        return _duckdb_joined("{", entry, "}", key)
    return _call(_GROUP_OBJECT, dialect, key, aggregate_order_by(value, key))


def json_group_array(dialect: str, value: Any, first: Any, *then: Any) -> sa.ColumnElement[Any]:
    """Aggregate: a JSON array of the group's values, ordered by `first`, then `then` (the same text every time)."""
    if dialect == "duckdb":
        return _duckdb_joined("[", _duckdb_json(value), "]", first, *then)
    return _call(_GROUP_ARRAY, dialect, aggregate_order_by(value, first, *then))


def iso_text(dialect: str, moment: Any) -> sa.ColumnElement[str]:
    """A naive UTC timestamp as ISO-8601 text with microseconds and `Z`."""
    if dialect == "duckdb":
        return sa.func.strftime(moment, sa.literal("%Y-%m-%dT%H:%M:%S.%fZ"))
    return sa.func.to_char(moment, sa.cast(sa.literal('YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), sa.Text))
