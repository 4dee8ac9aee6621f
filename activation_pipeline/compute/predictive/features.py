"""Features, population and labels of a predictive trait, as SQL on the compute engine, as of a time.

Features as of `t` read only events with `timestamp <= t`; a window `W` covers `(t - W, t]`, as everywhere
else. Labels read `(cutoff, as_of]`, and the training features are taken as of `cutoff = as_of - horizon`,
so no training feature sees an event the label is made of.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.event_columns import property_number
from activation_pipeline.compute.identity_components import duckdb_arrow
from activation_pipeline.compute.sqlutil import CountIf, agg_where, literal_sql
from activation_pipeline.compute.traits import computed_query, property_filter
from activation_pipeline.config import Workspace
from activation_pipeline.config.durations import format_window
from activation_pipeline.config.models import (
    AllCondition,
    AnyCondition,
    EventCondition,
    NotCondition,
    PredictiveGoal,
    PredictiveTrait,
)
from activation_pipeline.config.rules import walk_conditions

DEFAULT_EVENTS = 15
"""Events counted per window when the trait names none: the most frequent ones before the training cutoff."""


@dataclass(frozen=True)
class FeatureSpec:
    """The features one model reads, fixed when it is trained (scoring reads the same ones)."""

    events: tuple[str, ...]
    windows: tuple[timedelta, ...]
    monetary: str | None
    traits: tuple[str, ...]

    def names(self) -> list[str]:
        """Feature column names, in the order the model sees them."""
        spans = [*(f"{int(w.total_seconds())}s" for w in self.windows), "all"]
        names = [f"event{i}_{span}" for i in range(len(self.events)) for span in spans]
        names += [f"{what}_{span}" for what in ("events", "days") for span in spans]
        if self.monetary is not None:
            names += [f"monetary_{span}" for span in spans]
        names += ["recency_days", "tenure_days", *(f"trait_{t}" for t in self.traits)]
        return names

    def describe(self, name: str) -> str:
        """A feature's meaning for the figures (event names instead of positions)."""
        if name.startswith("event") and name[5].isdigit():
            index, span = name[5:].split("_", 1)
            return f"{self.events[int(index)]} ({_span_text(span)})"
        head, _, span = name.partition("_")
        if head in ("events", "days", "monetary"):
            label = {"events": "events", "days": "active days", "monetary": f"sum of {self.monetary}"}[head]
            return f"{label} ({_span_text(span)})"
        return name


def _span_text(span: str) -> str:
    return "all history" if span == "all" else f"last {format_window(timedelta(seconds=int(span[:-1])))}"


def choose_events(
    conn: sa.Connection, engine: ComputeEngine, trait: PredictiveTrait, until: datetime
) -> list[str]:
    """The trait's feature events, else the most frequent tracked events up to `until` (ties by name)."""
    if trait.features.events:
        return list(trait.features.events)
    e = engine.tables.events.c
    n = sa.func.count().label("n")
    query = (
        sa.select(e.event, n)
        .where(e.type == "track", e.timestamp <= until, e.event.isnot(None))
        .group_by(e.event)
        .order_by(n.desc(), e.event)
        .limit(DEFAULT_EVENTS)
    )
    return [row[0] for row in conn.execute(query)]


def _tracked(engine: ComputeEngine) -> tuple[Any, Any, Any]:
    tables = engine.tables
    e, s = tables.events.c, tables.identity_sets.c
    return tables.events.join(tables.identity_sets, s.set_hash == e.set_hash), e, s


def _goal(goal: PredictiveGoal, e: Any) -> sa.ColumnElement[bool]:
    parts: list[Any] = [e.type == "track"]
    if goal.event is not None:
        parts.append(e.event == goal.event)
    parts += [property_filter(e, f) for f in goal.where]
    return sa.and_(*parts)


def _population_columns(trait: PredictiveTrait, e: Any, at: datetime) -> dict[str, Any]:
    """One count per event condition of the population, keyed by the condition's position."""
    columns: dict[str, Any] = {}
    if trait.population is None:
        return columns
    for i, (_, node) in enumerate(walk_conditions(trait.population)):
        if isinstance(node, EventCondition):
            parts: list[Any] = [e.type == "track", e.event == node.event]
            if node.within is not None:
                parts.append(e.timestamp > at - node.within)
            parts += [property_filter(e, f) for f in node.where]
            columns[f"pop{i}"] = CountIf(sa.and_(*parts))
    return columns


def _population(node: Any, agg: Any, positions: dict[int, int]) -> sa.ColumnElement[bool]:
    if isinstance(node, AllCondition):
        return sa.and_(*[_population(c, agg, positions) for c in node.all])
    if isinstance(node, AnyCondition):
        return sa.or_(*[_population(c, agg, positions) for c in node.any])
    if isinstance(node, NotCondition):
        return sa.not_(_population(node.not_, agg, positions))
    assert isinstance(node, EventCondition)
    n = sa.func.coalesce(agg.c[f"pop{positions[id(node)]}"], 0)
    return sa.and_(n >= node.min_count, *([n <= node.at_most] if node.at_most is not None else []))


def feature_query(
    engine: ComputeEngine, workspace: Workspace, trait: PredictiveTrait, spec: FeatureSpec, at: datetime
) -> sa.Select[Any]:
    """One row per profile in the population as of `at`: profile_id, then `spec.names()` as REAL."""
    source, e, s = _tracked(engine)
    spans: list[timedelta | None] = [*spec.windows, None]

    def within(span: timedelta | None) -> sa.ColumnElement[bool]:
        return sa.true() if span is None else e.timestamp > at - span

    tracked = e.type == "track"
    aggregates: list[Any] = []
    for i, event in enumerate(spec.events):
        aggregates += [
            CountIf(sa.and_(tracked, e.event == event, within(w))).label(f"c{i}_{j}")
            for j, w in enumerate(spans)
        ]
    aggregates += [CountIf(sa.and_(tracked, within(w))).label(f"n_{j}") for j, w in enumerate(spans)]
    if spec.monetary is not None:
        value = property_number(e, spec.monetary)
        aggregates += [
            agg_where("sum", value, sa.and_(tracked, within(w))).label(f"m_{j}") for j, w in enumerate(spans)
        ]
    aggregates += [
        sa.func.max(sa.case((tracked, e.timestamp))).label("last_ts"),
        sa.func.min(e.timestamp).label("first_ts"),
    ]
    population = _population_columns(trait, e, at)
    aggregates += [c.label(name) for name, c in population.items()]
    agg = (
        sa.select(s.profile_id.label("k"), *aggregates)
        .select_from(source)
        .where(e.timestamp <= at, s.profile_id.isnot(None))
        .group_by(s.profile_id)
        .subquery("f")
    )
    # Active days: one narrow pass of (profile, day, latest event that day); a day is in a window when its
    # latest event is (cheaper than a distinct count per window).
    day = sa.func.date_trunc("day", e.timestamp)
    active = (
        sa.select(s.profile_id.label("k"), sa.func.max(e.timestamp).label("last"))
        .select_from(source)
        .where(tracked, e.timestamp <= at, s.profile_id.isnot(None))
        .group_by(s.profile_id, day)
        .subquery("a")
    )
    days = (
        sa.select(
            active.c.k,
            *[
                (CountIf(active.c.last > at - w) if w is not None else sa.func.count()).label(f"d_{j}")
                for j, w in enumerate(spans)
            ],
        )
        .group_by(active.c.k)
        .subquery("d")
    )
    real: sa.types.TypeEngine[float] = sa.REAL()

    def number(column: Any) -> Any:
        return sa.cast(sa.func.coalesce(column, 0), real)

    def days_before(column: Any) -> Any:
        seconds = sa.func.extract("epoch", sa.literal(at, sa.DateTime) - column)
        return sa.cast(seconds / 86400.0, real)

    columns: list[Any] = []
    names = iter(spec.names())
    for i in range(len(spec.events)):
        columns += [number(agg.c[f"c{i}_{j}"]).label(next(names)) for j in range(len(spans))]
    for table, prefix in ((agg, "n"), (days, "d"), *([(agg, "m")] if spec.monetary is not None else [])):
        columns += [number(table.c[f"{prefix}_{j}"]).label(next(names)) for j in range(len(spans))]
    columns += [days_before(agg.c.last_ts).label(next(names)), days_before(agg.c.first_ts).label(next(names))]
    joined: Any = agg.outerjoin(days, days.c.k == agg.c.k)
    if spec.traits:
        chosen = [t for t in workspace.traits.computed if t.key in spec.traits]
        p = engine.tables.profiles
        traits = computed_query(
            chosen, p, p.c.profile_id, s.profile_id, source, s.profile_id.isnot(None), e, at
        )
        traits_sub = traits.where(p.c.created_at <= at).subquery("t")
        joined = joined.outerjoin(traits_sub, traits_sub.c.profile_id == agg.c.k)
        columns += [sa.cast(traits_sub.c[key], real).label(next(names)) for key in spec.traits]
    query = sa.select(agg.c.k.label("profile_id"), *columns).select_from(joined)
    if trait.population is not None:
        positions = {
            id(node): i
            for i, (_, node) in enumerate(walk_conditions(trait.population))
            if isinstance(node, EventCondition)
        }
        query = query.where(_population(trait.population, agg, positions))
    return query.order_by(agg.c.k)


def label_query(
    engine: ComputeEngine, trait: PredictiveTrait, cutoff: datetime, as_of: datetime
) -> sa.Select[Any]:
    """profile_id, label: what each profile did in `(cutoff, as_of]` (1/0 for likelihood, the sum for value).

    Profiles without events in the span are absent: their label is 0 (or 1 for an absent goal)."""
    source, e, s = _tracked(engine)
    goal = _goal(trait.goal, e)
    if trait.kind == "value":
        assert trait.goal.property is not None
        value: Any = sa.func.coalesce(agg_where("sum", property_number(e, trait.goal.property), goal), 0.0)
    else:
        did = CountIf(goal) > 0
        value = sa.case((sa.not_(did) if trait.goal.absent else did, 1.0), else_=0.0)
    return (
        sa.select(s.profile_id, sa.cast(value, sa.Float).label("label"))
        .select_from(source)
        .where(e.timestamp > cutoff, e.timestamp <= as_of, s.profile_id.isnot(None))
        .group_by(s.profile_id)
    )


def training_query(
    engine: ComputeEngine,
    workspace: Workspace,
    trait: PredictiveTrait,
    spec: FeatureSpec,
    cutoff: datetime,
    as_of: datetime,
) -> sa.Select[Any]:
    """Features as of `cutoff` of the population then, with the label from `(cutoff, as_of]`."""
    features = feature_query(engine, workspace, trait, spec, cutoff).subquery("x")
    labels = label_query(engine, trait, cutoff, as_of).subquery("y")
    missing = 1.0 if trait.kind == "likelihood" and trait.goal.absent else 0.0
    label = sa.func.coalesce(labels.c.label, missing).label("label")
    return (
        sa.select(*features.c, label)
        .select_from(features.outerjoin(labels, labels.c.profile_id == features.c.profile_id))
        .order_by(features.c.profile_id)
    )


def read_table(conn: sa.Connection, query: Any) -> pa.Table:
    """A SELECT's result as Arrow, without a Python object per value (DuckDB natively, PostgreSQL by COPY)."""
    if conn.dialect.name == "duckdb":
        return duckdb_arrow(conn, query)
    buffer = io.BytesIO()
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(
            f"COPY ({literal_sql(conn, query)}) TO STDOUT WITH (FORMAT csv, HEADER true)", buffer
        )
    finally:
        cursor.close()
    buffer.seek(0)
    return pa_csv.read_csv(buffer)
