"""The tables of one published version of the serving copy, and where each version lives.

DuckDB: each version is its own file `v<N>.duckdb` in `serving.path`, named by the file `CURRENT`.
PostgreSQL: each version is a set of tables `srv<N>_*` in the compute schema, named by the row of
`serving_current`. Readers follow the pointer, so they see one whole version or the next, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

POINTER_FILE = "CURRENT"
POINTER_TABLE = "serving_current"
KEY_SEPARATOR = ":"
PROFILE_PREFIX = "use_"
"""Profiles are also found by their id written like Segment's segment ids: `use_<profile id>`."""


@dataclass(frozen=True)
class ServingTables:
    """The tables of one version, with the schema (or DuckDB catalog) and name prefix they live under."""

    version: int
    lookup: sa.Table
    profiles: sa.Table
    accounts: sa.Table
    events: sa.Table
    publication: sa.Table


def duckdb_file_name(version: int) -> str:
    """The file of a DuckDB version."""
    return f"v{version}.duckdb"


def table_prefix(version: int, on_duckdb: bool) -> str:
    """Table name prefix of a version: none in its own DuckDB file, `srv<N>_` beside the compute tables."""
    return "" if on_duckdb else f"srv{version}_"


def serving_tables(version: int, schema: str | None, prefix: str) -> ServingTables:
    """Table objects of one version (`schema` is the DuckDB catalog alias or the PostgreSQL schema)."""
    md = sa.MetaData(schema=schema)
    text, big, when = sa.Text, sa.BigInteger, sa.DateTime
    return ServingTables(
        version=version,
        lookup=sa.Table(f"{prefix}lookup", md, sa.Column("key", text), sa.Column("profile_id", big)),
        profiles=sa.Table(
            f"{prefix}profiles",
            md,
            sa.Column("profile_id", big),
            sa.Column("doc", text),
        ),
        accounts=sa.Table(
            f"{prefix}accounts",
            md,
            sa.Column("group_id", text),
            sa.Column("doc", text),
        ),
        events=sa.Table(
            f"{prefix}events",
            md,
            sa.Column("profile_id", big),
            sa.Column("timestamp", when),
            sa.Column("message_id", text),
            sa.Column("type", text),
            sa.Column("event", text),
            sa.Column("user_id", text),
            sa.Column("anonymous_id", text),
            sa.Column("group_id", text),
            sa.Column("properties", text),
            sa.Column("context", text),
            sa.Column("traits", text),
        ),
        publication=sa.Table(
            f"{prefix}publication",
            md,
            sa.Column("version", big),
            sa.Column("as_of", when),
            sa.Column("published_at", when),
            sa.Column("profiles", big),
            sa.Column("events", big),
        ),
    )


def pointer_table(schema: str) -> sa.Table:
    """PostgreSQL: the one-row table naming the current version."""
    return sa.Table(
        POINTER_TABLE,
        sa.MetaData(schema=schema),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
    )
