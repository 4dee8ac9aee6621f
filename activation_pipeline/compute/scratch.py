"""Short-lived work tables filled from Arrow (key lists joined against big tables)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from activation_pipeline.compute.engine import load_arrow

_TYPES: dict[str, type[sa.types.TypeEngine[Any]]] = {
    "string": sa.Text,
    "large_string": sa.Text,
    "int64": sa.BigInteger,
    "int32": sa.Integer,
    "double": sa.Float,
    "bool": sa.Boolean,
    "date32[day]": sa.Date,
    "timestamp[us]": sa.DateTime,
}


def scratch_table(conn: sa.Connection, schema: str | None, name: str, data: pa.Table) -> sa.Table:
    """(Re)create table `schema.name` with the Arrow table's columns and rows; the caller drops it."""
    table = sa.Table(
        name, sa.MetaData(schema=schema), *[sa.Column(f.name, _TYPES[str(f.type)]()) for f in data.schema]
    )
    table.drop(conn, checkfirst=True)
    table.create(conn)
    load_arrow(conn, table, data)
    return table
