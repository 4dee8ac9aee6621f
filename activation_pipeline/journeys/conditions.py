"""Journey conditions evaluated for people at their own moments, in SQL on the compute engine.

A journey asks "does this condition hold for this person at the time they reached this step", so every
question is a probe: (probe id, profile, moment, when the person entered, when they reached the step). The
probes go into a typed table and one query per condition answers them all. Event conditions count events up
to the probe's moment (and within the window before it, or since entry / the step); trait conditions and
audience membership read the values the evaluation computed as of the run (traits are not kept per moment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from activation_pipeline.compute.audiences import trait_refs
from activation_pipeline.compute.engine import ComputeEngine, load_arrow
from activation_pipeline.compute.sqlutil import compare, drop_table
from activation_pipeline.compute.traits import property_filter
from activation_pipeline.config.journeys import (
    JourneyAllCondition,
    JourneyAnyCondition,
    JourneyEventCondition,
    JourneyNotCondition,
    walk_journey_condition,
)
from activation_pipeline.config.models import AudienceCondition, EventCondition, TraitCondition
from activation_pipeline.config.workspace import Workspace

PROBE_TABLE = "_journey_probes"


@dataclass(frozen=True)
class Probe:
    """One question: does the condition hold for `profile_id` at `moment`?"""

    probe_id: int
    profile_id: int
    moment: datetime
    entered_at: datetime
    step_since: datetime


def _windows(condition: Any) -> list[timedelta]:
    found = {
        node.within
        for _, node in walk_journey_condition(condition)
        if isinstance(node, EventCondition) and node.within is not None
    }
    return sorted(found)


class ConditionEvaluator:
    """Answers journey conditions for batches of probes on one connection of the compute engine."""

    def __init__(self, conn: sa.Connection, engine: ComputeEngine, workspace: Workspace) -> None:
        self.conn = conn
        self.engine = engine
        self.refs = trait_refs(workspace, "user")

    def holds(self, condition: Any, probes: Sequence[Probe]) -> set[int]:
        """The ids of the probes for which the condition holds."""
        if not probes:
            return set()
        windows = _windows(condition)
        md = sa.MetaData(schema=self.engine.schema)
        columns: list[sa.Column[Any]] = [
            sa.Column("probe_id", sa.BigInteger),
            sa.Column("profile_id", sa.BigInteger),
            sa.Column("moment", sa.DateTime),
            sa.Column("entered_at", sa.DateTime),
            sa.Column("step_since", sa.DateTime),
            *[sa.Column(f"lo_{i}", sa.DateTime) for i in range(len(windows))],
        ]
        table = sa.Table(PROBE_TABLE, md, *columns)
        drop_table(self.conn, self.engine.schema, PROBE_TABLE)
        table.create(self.conn)
        data = {
            "probe_id": pa.array([p.probe_id for p in probes], pa.int64()),
            "profile_id": pa.array([p.profile_id for p in probes], pa.int64()),
            "moment": pa.array([p.moment for p in probes], pa.timestamp("us")),
            "entered_at": pa.array([p.entered_at for p in probes], pa.timestamp("us")),
            "step_since": pa.array([p.step_since for p in probes], pa.timestamp("us")),
        }
        for i, window in enumerate(windows):
            data[f"lo_{i}"] = pa.array([p.moment - window for p in probes], pa.timestamp("us"))
        load_arrow(self.conn, table, pa.table(data))
        compiled = _Compiler(self.engine, self.refs, table, windows).compile(condition)
        rows = self.conn.execute(sa.select(table.c.probe_id).where(compiled)).scalars().all()
        drop_table(self.conn, self.engine.schema, PROBE_TABLE)
        return {int(r) for r in rows}

    def matching_now(self, condition: Any, as_of: datetime) -> set[int]:
        """Every profile for which the condition holds at `as_of` (the entry condition)."""
        tables = self.engine.tables
        if isinstance(condition, AudienceCondition):
            m = tables.membership
            query = sa.select(m.c.profile_id).where(m.c.audience_key == condition.audience).distinct()
            return {int(r) for r in self.conn.execute(query).scalars()}
        profiles = [int(r) for r in self.conn.execute(sa.select(tables.profiles.c.profile_id)).scalars()]
        probes = [Probe(p, p, as_of, as_of, as_of) for p in profiles]
        return self.holds(condition, probes)


class _Compiler:
    def __init__(
        self, engine: ComputeEngine, refs: dict[str, Any], probes: sa.Table, windows: list[timedelta]
    ):
        self.engine = engine
        self.refs = refs
        self.p = probes
        self.windows = windows

    def compile(self, node: Any) -> sa.ColumnElement[bool]:
        if isinstance(node, JourneyAllCondition):
            return sa.and_(*[self.compile(c) for c in node.all])
        if isinstance(node, JourneyAnyCondition):
            return sa.or_(*[self.compile(c) for c in node.any])
        if isinstance(node, JourneyNotCondition):
            return sa.not_(self.compile(node.not_))
        if isinstance(node, EventCondition):
            return self._event(node)
        if isinstance(node, TraitCondition):
            ref = self.refs[node.trait]
            t = sa.table(
                ref.table, sa.column(ref.key_column), sa.column(node.trait), schema=self.engine.schema
            )
            value = (
                sa.select(t.c[node.trait]).where(t.c[ref.key_column] == self.p.c.profile_id).scalar_subquery()
            )
            return compare(value, node, is_list=ref.is_list)
        if isinstance(node, AudienceCondition):
            m = self.engine.tables.membership
            return self.p.c.profile_id.in_(sa.select(m.c.profile_id).where(m.c.audience_key == node.audience))
        raise TypeError(f"unknown condition {type(node).__name__}")

    def _event(self, node: EventCondition) -> sa.ColumnElement[bool]:
        tables = self.engine.tables
        e, s, p = tables.events.c, tables.identity_sets.c, self.p.c
        parts: list[Any] = [
            s.profile_id == p.profile_id,
            e.type == "track",
            e.event == node.event,
            e.timestamp <= p.moment,
        ]
        if node.within is not None:
            parts.append(e.timestamp > p[f"lo_{self.windows.index(node.within)}"])
        since = getattr(node, "since", None) if isinstance(node, JourneyEventCondition) else None
        if since == "entry":
            parts.append(e.timestamp > p.entered_at)
        elif since == "step":
            parts.append(e.timestamp > p.step_since)
        parts += [property_filter(e, f) for f in node.where]
        source = tables.events.join(tables.identity_sets, s.set_hash == e.set_hash)
        n = sa.select(sa.func.count()).select_from(source).where(*parts).scalar_subquery()
        bounds = [n >= node.min_count]
        if node.at_most is not None:
            bounds.append(n <= node.at_most)
        return sa.and_(*bounds)
