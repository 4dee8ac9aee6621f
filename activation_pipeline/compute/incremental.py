"""Which profiles a run must recompute: the plan shared by the trait and audience stages.

A stage runs incrementally when its tables are as of the last finished evaluation and nothing forces a
rebuild. The affected profiles since that evaluation (time `T1`, landing batch `B1`) up to `T` are:
- profiles touched by identity resolution (new, gaining identifiers, merged, merged away) and profiles whose
  SQL traits changed (both collected in `pending_affected`);
- profiles with events new since then: `T1 < timestamp <= T`, or landed after batch `B1` (late arrivals);
- for every window `W` in use, profiles with events that fell out of it: `T1 - W < timestamp <= T - W`.
Windows are `(as_of - W, as_of]`: an event exactly `W` before as-of is out, one at as-of is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from activation_pipeline.compute import state
from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.event_columns import ensure_event_columns
from activation_pipeline.compute.schema import Tables
from activation_pipeline.compute.sqlutil import (
    create_table_as,
    create_temporary_table_as,
    drop_table,
    table_columns,
)
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import EventCondition
from activation_pipeline.config.rules import walk_conditions
from activation_pipeline.errors import ComputeError

STAGES = ("custom_traits", "computed_traits", "sql_traits")
PREDICTIVE_STAGE = "predictive_traits"


class StageOrderError(ComputeError, RuntimeError):
    """A stage was run before the stage it depends on reached the same as-of time."""


@dataclass(frozen=True)
class Plan:
    """How one stage runs at `as_of`: fully, or only for the profiles in `affected` (a table)."""

    as_of: datetime
    full: bool
    previous_as_of: datetime | None
    affected: sa.Table | None

    @property
    def mode(self) -> str:
        """`full` or `incremental`."""
        return "full" if self.full else "incremental"


def windows(workspace: Workspace) -> set[timedelta]:
    """Every user-level time window the workspace's computed traits and event conditions use."""
    found = {t.window for t in workspace.traits.computed if t.window is not None and t.level == "user"}
    for audience in workspace.audiences:
        if audience.level == "user":
            found.update(
                node.within
                for _, node in walk_conditions(audience.where)
                if isinstance(node, EventCondition) and node.within is not None
            )
    return found


def affected_table(schema: str) -> sa.Table:
    """The table holding the affected profiles of the current plan."""
    return sa.Table("affected", sa.MetaData(schema=schema), sa.Column("profile_id", sa.BigInteger))


def require_identity(conn: sa.Connection, engine: ComputeEngine, as_of: datetime) -> None:
    """Raise StageOrderError unless the identity graph is as of `as_of`."""
    identity_as_of = state.get_time(conn, engine.tables, state.IDENTITY_AS_OF)
    if identity_as_of != as_of:
        raise StageOrderError(
            f"profiles are as of {identity_as_of}, not {as_of}: materialise profiles at this as-of time first"
        )


def plan_stage(
    conn: sa.Connection, engine: ComputeEngine, workspace: Workspace, stage: str, as_of: datetime
) -> Plan:
    """Decide full or incremental for `stage` at `as_of`, materialising the affected profiles if incremental."""
    tables = engine.tables
    require_identity(conn, engine, as_of)
    ensure_event_columns(conn, tables.events, workspace)  # every stage reads the typed event columns
    previous = state.get_time(conn, tables, state.EVALUATED_AS_OF)
    stage_as_of = state.get_time(conn, tables, state.stage_key(stage))
    full = (
        state.get(conn, tables, state.EVALUATION_CONFIG) != evaluation_fingerprint(workspace)
        or previous is None
        or as_of < previous
        or stage_as_of != previous
        or state.flag(conn, tables, state.EVALUATION_NEEDS_FULL)
    )
    if full:
        return Plan(as_of, True, previous, None)
    assert previous is not None
    previous_batch = state.get_int(conn, tables, state.EVALUATED_BATCH)
    key = f"{as_of.isoformat()}|{previous.isoformat()}|{previous_batch}|{state.get_int(conn, tables, state.IDENTITY_BATCH)}"
    if state.get(conn, tables, state.AFFECTED_KEY) != key:
        e, s = tables.events.c, tables.identity_sets
        moved = [e.timestamp > previous, e.batch > previous_batch]
        moved += [
            sa.and_(e.timestamp > previous - w, e.timestamp <= as_of - w) for w in sorted(windows(workspace))
        ]
        query = (
            sa.select(s.c.profile_id)
            .select_from(tables.events.join(s, s.c.set_hash == e.set_hash))
            .where(e.timestamp <= as_of, sa.or_(*moved), s.c.profile_id.isnot(None))
            .distinct()
        )
        create_table_as(conn, engine.schema, "affected_events", query)
        state.put(conn, tables, state.AFFECTED_KEY, key)
    events_part = sa.table("affected_events", sa.column("profile_id"), schema=engine.schema)
    union = sa.union(sa.select(events_part.c.profile_id), sa.select(tables.pending_affected.c.profile_id))
    create_table_as(conn, engine.schema, "affected", sa.select(union.subquery()))
    return Plan(as_of, False, previous, affected_table(engine.schema))


def affected_events(
    conn: sa.Connection, tables: Tables, name: str, events: set[str], columns: set[str], plan: Plan
) -> sa.TableClause:
    """The affected profiles' track events named `events` up to as-of, as temporary table `name`.

    It holds their profile, type, event, time and `columns`. An incremental stage reads the stored events once
    for the affected profiles and aggregates this small table, not every stored event once per aggregation
    (most read all history), so its cost does not grow with the number of traits and conditions.
    """
    assert plan.affected is not None
    e, s = tables.events.c, tables.identity_sets.c
    names = ["type", "event", "timestamp", *sorted(columns)]
    query = (
        sa.select(s.profile_id, *[e[n] for n in names])
        .select_from(tables.events.join(tables.identity_sets, s.set_hash == e.set_hash))
        .where(
            s.profile_id.in_(sa.select(plan.affected.c.profile_id)),
            e.type == "track",
            e.timestamp <= plan.as_of,
            e.event.in_(sorted(events)),
        )
    )
    return create_temporary_table_as(conn, name, query)


def note_changed_profiles(
    conn: sa.Connection, engine: ComputeEngine, new_name: str, old_name: str, columns: Sequence[str]
) -> int:
    """Pass to the audience stage (`pending_affected`) the profiles whose `columns` differ between two
    profile tables, gained or lost a row; nothing when the old table is missing or has other columns."""
    if set(table_columns(conn, engine.schema, old_name)) != {"profile_id", *columns}:
        return 0
    new, old = (
        sa.table(name, sa.column("profile_id"), *[sa.column(c) for c in columns], schema=engine.schema)
        for name in (new_name, old_name)
    )
    differs = [new.c[c].is_distinct_from(old.c[c]) for c in columns]
    changed = (
        sa.select(sa.func.coalesce(new.c.profile_id, old.c.profile_id).label("profile_id"))
        .select_from(new.outerjoin(old, new.c.profile_id == old.c.profile_id, full=True))
        .where(sa.or_(new.c.profile_id.is_(None), old.c.profile_id.is_(None), *differs))
    )
    result = conn.execute(sa.insert(engine.tables.pending_affected).from_select(["profile_id"], changed))
    return max(result.rowcount or 0, 0)


def stage_done(conn: sa.Connection, engine: ComputeEngine, stage: str, as_of: datetime) -> None:
    """Record that a stage's tables are now as of `as_of`."""
    state.put_time(conn, engine.tables, state.stage_key(stage), as_of)


def trait_stages(workspace: Workspace) -> tuple[str, ...]:
    """The trait stages an evaluation of this workspace runs before its audiences."""
    return (*STAGES, PREDICTIVE_STAGE) if workspace.traits.predictive else STAGES


def require_stages(conn: sa.Connection, engine: ComputeEngine, workspace: Workspace, as_of: datetime) -> None:
    """Raise StageOrderError unless every trait stage is as of `as_of`."""
    for stage in trait_stages(workspace):
        done = state.get_time(conn, engine.tables, state.stage_key(stage))
        if done != as_of:
            raise StageOrderError(
                f"{stage} is as of {done}, not {as_of}: materialise it at this as-of time first"
            )


def evaluation_fingerprint(workspace: Workspace) -> str:
    """Digest of the trait and audience configuration: when it changes, the next evaluation is full."""
    return state.fingerprint(workspace.traits, workspace.audiences)


def finish_evaluation(conn: sa.Connection, engine: ComputeEngine, workspace: Workspace, plan: Plan) -> None:
    """Advance the evaluation watermark after audiences were computed as planned; note for the serving copy
    which profiles it recomputed (every profile, after a full evaluation)."""
    tables, as_of = engine.tables, plan.as_of
    if plan.affected is None:
        state.set_flag(conn, tables, state.SERVING_NEEDS_FULL, True)
        conn.execute(sa.delete(tables.serving_pending))
    elif not state.flag(conn, tables, state.SERVING_NEEDS_FULL):
        # Also whoever entered or left an audience: an account audience follows its accounts' traits.
        changed = sa.select(tables.changes.c.profile_id).where(tables.changes.c.as_of == as_of)
        recomputed = sa.union(sa.select(plan.affected.c.profile_id), changed)
        conn.execute(sa.insert(tables.serving_pending).from_select(["profile_id"], recomputed))
    state.put(conn, tables, state.EVALUATION_CONFIG, evaluation_fingerprint(workspace))
    state.put_time(conn, tables, state.EVALUATED_AS_OF, as_of)
    state.put(conn, tables, state.EVALUATED_BATCH, str(state.get_int(conn, tables, state.IDENTITY_BATCH)))
    for stage in (*trait_stages(workspace), "audiences"):
        state.put_time(conn, tables, state.stage_key(stage), as_of)
    state.set_flag(conn, tables, state.EVALUATION_NEEDS_FULL, False)
    state.put(conn, tables, state.AFFECTED_KEY, None)
    conn.execute(sa.delete(tables.pending_affected))
    drop_table(conn, engine.schema, "affected_events")
    drop_table(conn, engine.schema, "affected")
