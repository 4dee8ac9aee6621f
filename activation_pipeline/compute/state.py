"""Watermarks and flags kept between runs in the `compute_state` table."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from activation_pipeline.compute.schema import Tables

IDENTITY_AS_OF = "identity_as_of"
IDENTITY_BATCH = "identity_batch"
IDENTITY_NEEDS_FULL = "identity_needs_full"
EVALUATED_AS_OF = "evaluated_as_of"
EVALUATED_BATCH = "evaluated_batch"
EVALUATION_NEEDS_FULL = "evaluation_needs_full"
AFFECTED_KEY = "affected_key"
IDENTITY_CONFIG = "identity_config"
EVALUATION_CONFIG = "evaluation_config"
SERVING_NEEDS_FULL = "serving_needs_full"
SERVING_BASIS = "serving_basis"
"""The published serving version and the configuration it was built with (`<version>|<fingerprint>`)."""
LANDING_BATCH = "landing_batch"
"""Set while a landing runs (its batch); still set at the next landing means it was interrupted."""


def stage_key(stage: str) -> str:
    """The state key holding the as-of time a trait stage's tables were last computed for."""
    return f"stage_as_of:{stage}"


def get(conn: sa.Connection, tables: Tables, key: str) -> str | None:
    """A state value, or None."""
    return conn.execute(sa.select(tables.state.c.value).where(tables.state.c.key == key)).scalar_one_or_none()


def put(conn: sa.Connection, tables: Tables, key: str, value: str | None) -> None:
    """Set (or with None, remove) a state value."""
    conn.execute(sa.delete(tables.state).where(tables.state.c.key == key))
    if value is not None:
        conn.execute(sa.insert(tables.state).values(key=key, value=value))


def get_time(conn: sa.Connection, tables: Tables, key: str) -> datetime | None:
    """A state value holding a naive UTC time."""
    value = get(conn, tables, key)
    return datetime.fromisoformat(value) if value else None


def put_time(conn: sa.Connection, tables: Tables, key: str, value: datetime) -> None:
    """Store a naive UTC time."""
    put(conn, tables, key, value.isoformat())


def get_int(conn: sa.Connection, tables: Tables, key: str, default: int = 0) -> int:
    """A state value holding an integer."""
    value = get(conn, tables, key)
    return int(value) if value else default


def flag(conn: sa.Connection, tables: Tables, key: str) -> bool:
    """True when a flag is set."""
    return get(conn, tables, key) == "1"


def set_flag(conn: sa.Connection, tables: Tables, key: str, on: bool) -> None:
    """Set or clear a flag."""
    put(conn, tables, key, "1" if on else None)


def fingerprint(*parts: object) -> str:
    """A digest of configuration models (a change of it forces a full run)."""
    import hashlib
    import json

    from pydantic import BaseModel

    def plain(part: object) -> object:
        if isinstance(part, BaseModel):
            return part.model_dump(mode="json")
        if isinstance(part, list):
            return [plain(p) for p in part]
        return part

    text = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
