"""Land one day of messages in the compute engine: valid events, and the quarantine of unusable ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import sqlalchemy as sa

from activation_pipeline.compute import state
from activation_pipeline.compute.engine import ComputeEngine, load_arrow
from activation_pipeline.compute.ingest import ParsedBatch, reasons
from activation_pipeline.compute.scratch import scratch_table
from activation_pipeline.compute.sources import read_day
from activation_pipeline.compute.sqlutil import drop_table
from activation_pipeline.config import Workspace


@dataclass(frozen=True)
class LandingSummary:
    """What landing one day did (counts only: no message content)."""

    day: date
    events: int
    quarantined: int
    duplicates: int
    batch: int
    unchanged: bool
    reasons: dict[str, int] = field(default_factory=dict)


def land_batch(
    engine: ComputeEngine, day: date, parsed: ParsedBatch, undated_sources: list[str] | None = None
) -> LandingSummary:
    """Replace the landed events and quarantine of `day` with `parsed` (a no-op when nothing changed)."""
    with engine.begin() as conn:
        return _land(conn, engine, day, parsed, undated_sources)


def _land(
    conn: sa.Connection,
    engine: ComputeEngine,
    day: date,
    parsed: ParsedBatch,
    undated_sources: list[str] | None,
) -> LandingSummary:
    tables = engine.tables
    digest = parsed.content_hash()
    previous = conn.execute(sa.select(tables.landings).where(tables.landings.c.day == day)).mappings().first()
    if previous is not None and previous["content_hash"] == digest:
        return LandingSummary(
            day,
            len(parsed.rows),
            len(parsed.quarantine),
            parsed.duplicates,
            previous["batch"],
            True,
            reasons(parsed),
        )
    batch = (conn.execute(sa.select(sa.func.max(tables.landings.c.batch))).scalar() or 0) + 1
    conn.execute(sa.delete(tables.events).where(tables.events.c.day == day))
    conn.execute(sa.delete(tables.quarantine).where(tables.quarantine.c.day == day))
    if undated_sources:
        conn.execute(
            sa.delete(tables.quarantine).where(
                tables.quarantine.c.day.is_(None), tables.quarantine.c.source.in_(undated_sources)
            )
        )
    load_arrow(conn, tables.events, parsed.event_table(batch))
    load_arrow(conn, tables.quarantine, parsed.quarantine_table())
    _add_set_keys(conn, engine, parsed)
    conn.execute(sa.delete(tables.landings).where(tables.landings.c.day == day))
    conn.execute(
        sa.insert(tables.landings).values(
            day=day,
            batch=batch,
            content_hash=digest,
            events=len(parsed.rows),
            quarantined=len(parsed.quarantine),
            landed_at=datetime.now(UTC).replace(tzinfo=None),
        )
    )
    if previous is not None and previous["batch"] <= state.get_int(conn, tables, state.IDENTITY_BATCH):
        # Events already folded into profiles were replaced: merges cannot be undone incrementally.
        state.set_flag(conn, tables, state.IDENTITY_NEEDS_FULL, True)
        state.set_flag(conn, tables, state.EVALUATION_NEEDS_FULL, True)
    return LandingSummary(
        day, len(parsed.rows), len(parsed.quarantine), parsed.duplicates, batch, False, reasons(parsed)
    )


def _add_set_keys(conn: sa.Connection, engine: ComputeEngine, parsed: ParsedBatch) -> None:
    """Record the identifiers of identifier sets not seen before (the identity graph's edges)."""
    keys = parsed.set_keys_table()
    if keys.num_rows == 0:
        return
    tables = engine.tables
    scratch = scratch_table(conn, engine.schema, "_scratch_set_keys", keys)
    known = tables.set_keys
    conn.execute(
        sa.insert(known).from_select(
            ["set_hash", "pos", "identifier_type", "value"],
            sa.select(scratch).where(~sa.exists().where(known.c.set_hash == scratch.c.set_hash)),
        )
    )
    drop_table(conn, engine.schema, "_scratch_set_keys")


def land_day(engine: ComputeEngine, workspace: Workspace, day: date) -> LandingSummary:
    """Read `day` from the workspace's events source and land it (idempotent: landing again replaces it)."""
    parsed, undated = read_day(workspace, day)
    return land_batch(engine, day, parsed, undated)


def land_days(engine: ComputeEngine, workspace: Workspace, days: list[date]) -> list[LandingSummary]:
    """Land several days in one transaction (each day replaced as by `land_day`)."""
    with engine.begin() as conn:
        return [_land(conn, engine, day, *read_day(workspace, day)) for day in days]
