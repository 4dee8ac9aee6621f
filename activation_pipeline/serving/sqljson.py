"""JSON building blocks for the serving copy, named per dialect (DuckDB and PostgreSQL spell them differently)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

_OBJECT = {"duckdb": "json_object", "postgresql": "json_build_object"}
_GROUP_OBJECT = {"duckdb": "json_group_object", "postgresql": "json_object_agg"}
_GROUP_ARRAY = {"duckdb": "json_group_array", "postgresql": "json_agg"}
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


def json_group_object(dialect: str, key: Any, value: Any) -> sa.ColumnElement[Any]:
    """Aggregate: a JSON object of key -> value over the group."""
    return _call(_GROUP_OBJECT, dialect, key, value)


def json_group_array(dialect: str, value: Any) -> sa.ColumnElement[Any]:
    """Aggregate: a JSON array of the group's values."""
    return _call(_GROUP_ARRAY, dialect, value)


def iso_text(dialect: str, moment: Any) -> sa.ColumnElement[str]:
    """A naive UTC timestamp as ISO-8601 text with microseconds and `Z`."""
    if dialect == "duckdb":
        return sa.func.strftime(moment, sa.literal("%Y-%m-%dT%H:%M:%S.%fZ"))
    return sa.func.to_char(moment, sa.cast(sa.literal('YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), sa.Text))
