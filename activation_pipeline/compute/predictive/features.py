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

from activation_pipeline.compute.engine import ComputeEngine, duckdb_arrow
from activation_pipeline.compute.event_columns import property_number, trait_text
from activation_pipeline.compute.sqlutil import CountIf, PickBy, agg_where, literal_sql
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


MAX_CATEGORIES = 30
"""Values of a categorical feature the model tells apart (the most frequent at training); the rest are one
"other" category, and a missing value is its own (NaN)."""


@dataclass(frozen=True)
class FeatureSpec:
    """The features one model reads, fixed when it is trained (scoring reads the same ones).

    `traits` are numeric computed traits; `categorical` are text-valued traits (custom traits, and most
    frequent / first / last value computed traits) with, once trained, the `vocabulary` of each."""

    events: tuple[str, ...]
    windows: tuple[timedelta, ...]
    monetary: str | None
    traits: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    vocabulary: tuple[tuple[str, ...], ...] = ()

    def names(self) -> list[str]:
        """Feature column names, in the order the model sees them (categorical ones last)."""
        spans = [*(f"{int(w.total_seconds())}s" for w in self.windows), "all"]
        names = [f"event{i}_{span}" for i in range(len(self.events)) for span in spans]
        names += [f"{what}_{span}" for what in ("events", "days") for span in spans]
        if self.monetary is not None:
            names += [f"monetary_{span}" for span in spans]
        names += ["recency_days", "tenure_days", *(f"trait_{t}" for t in self.traits)]
        return names + [f"category_{t}" for t in self.categorical]

    def describe(self, name: str) -> str:
        """A feature's meaning for the figures (event names instead of positions)."""
        if name.startswith("event") and name[5].isdigit():
            index, span = name[5:].split("_", 1)
            return f"{self.events[int(index)]} ({_span_text(span)})"
        head, _, span = name.partition("_")
        if head in ("events", "days", "monetary"):
            label = {"events": "events", "days": "active days", "monetary": f"sum of {self.monetary}"}[head]
            return f"{label} ({_span_text(span)})"
        if head == "category":
            return f"{span} (category)"
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
    """Per event row, 1 where it meets an event condition of the population (NULL otherwise), keyed by position."""
    columns: dict[str, Any] = {}
    if trait.population is None:
        return columns
    for i, (_, node) in enumerate(walk_conditions(trait.population)):
        if isinstance(node, EventCondition):
            parts: list[Any] = [e.type == "track", e.event == node.event]
            if node.within is not None:
                parts.append(e.timestamp > at - node.within)
            parts += [property_filter(e, f) for f in node.where]
            columns[f"pop{i}"] = sa.case((sa.and_(*parts), 1))
    return columns


def _population(node: Any, agg: Any, positions: dict[int, int]) -> sa.ColumnElement[bool]:
    if isinstance(node, AllCondition):
        return sa.and_(*[_population(c, agg, positions) for c in node.all])
    if isinstance(node, AnyCondition):
        return sa.or_(*[_population(c, agg, positions) for c in node.any])
    if isinstance(node, NotCondition):
        return sa.not_(_population(node.not_, agg, positions))
    assert isinstance(node, EventCondition)
    n = agg.c[f"pop{positions[id(node)]}"]
    return sa.and_(n >= node.min_count, *([n <= node.at_most] if node.at_most is not None else []))


def _sampled(profile_id: Any, every: int) -> sa.ColumnElement[bool]:
    """Resolved profiles, and with `every` > 1 only those whose id is a multiple of it."""
    if every <= 1:
        return profile_id.isnot(None)
    return sa.and_(profile_id.isnot(None), profile_id % every == 0)


def _added(columns: list[Any]) -> Any:
    total = columns[0]
    for column in columns[1:]:
        total = total + column
    return total


def feature_query(
    engine: ComputeEngine,
    workspace: Workspace,
    trait: PredictiveTrait,
    spec: FeatureSpec,
    at: datetime,
    every: int = 1,
) -> sa.Select[Any]:
    """One row per profile in the population as of `at`: profile_id, then `spec.names()` (REAL, and text for
    the categorical traits). `every` > 1 reads only the profiles whose id is a multiple of it (a sample).

    One pass over the events up to `at`: each tracked event gets a small integer slot, (position of its
    event among `spec.events`, or "other") x (the narrowest window holding it), and one aggregation counts
    each slot with an integer equality, which is several times cheaper than a filter per (event, window) on
    names and times. A window's count is the sum of its slot and the narrower ones. Active days take a second
    aggregation of (profile, day) over the same rows: a day is in a window when its latest event is. The rows
    are a plain subquery read twice, not a CTE: DuckDB would materialise a CTE (every event up to `at`), which
    cost more CPU and memory than scanning and joining twice."""
    source, e, s = _tracked(engine)
    profiles = _sampled(s.profile_id, every)
    edges = sorted(set(spec.windows))
    buckets = len(edges) + 1  # the last bucket: older than the widest window
    kinds = len(spec.events) + 1  # the last kind: a tracked event not among spec.events
    tracked = e.type == "track"
    small: sa.types.TypeEngine[int] = sa.SmallInteger()
    bucket: Any = sa.case(*[(e.timestamp > at - w, j) for j, w in enumerate(edges)], else_=len(edges))
    code: Any = (
        sa.case({name: i for i, name in enumerate(spec.events)}, value=e.event, else_=len(spec.events))
        if spec.events
        else sa.literal(0)
    )
    rows: list[Any] = [
        s.profile_id.label("k"),
        e.timestamp.label("ts"),
        sa.cast(sa.case((tracked, code * buckets + bucket)), small).label("slot"),
        sa.cast(sa.case((tracked, bucket)), small).label("bucket"),
        sa.func.date_trunc("day", e.timestamp).label("day"),
    ]
    if spec.monetary is not None:
        rows.append(property_number(e, spec.monetary).label("value"))
    population = _population_columns(trait, e, at)
    rows += [c.label(name) for name, c in population.items()]
    x = sa.select(*rows).select_from(source).where(e.timestamp <= at, profiles).subquery("rows")
    aggregates: list[Any] = [
        CountIf(x.c.slot == i * buckets + b).label(f"s{i}_{b}") for i in range(kinds) for b in range(buckets)
    ]
    if spec.monetary is not None:
        aggregates += [agg_where("sum", x.c.value, x.c.bucket == b).label(f"m{b}") for b in range(buckets)]
    aggregates += [
        agg_where("max", x.c.ts, x.c.bucket.isnot(None)).label("last_ts"),
        sa.func.min(x.c.ts).label("first_ts"),
        *[sa.func.count(x.c[name]).label(name) for name in population],
    ]
    agg = sa.select(x.c.k, *aggregates).group_by(x.c.k).subquery("f")
    per_day = (
        sa.select(x.c.k, sa.func.min(x.c.bucket).label("b"))
        .where(x.c.bucket.isnot(None))
        .group_by(x.c.k, x.c.day)
        .subquery("a")
    )
    days = (
        sa.select(per_day.c.k, *[CountIf(per_day.c.b == b).label(f"d{b}") for b in range(buckets)])
        .group_by(per_day.c.k)
        .subquery("d")
    )
    real: sa.types.TypeEngine[float] = sa.REAL()
    # Buckets up to this one make each output span (windows in the spec's order, then all history).
    spans = [edges.index(w) for w in spec.windows] + [buckets - 1]

    def number(column: Any) -> Any:
        return sa.cast(column, real)

    def days_before(column: Any) -> Any:
        seconds = sa.func.extract("epoch", sa.literal(at, sa.DateTime) - column)
        return sa.cast(seconds / 86400.0, real)

    columns: list[Any] = []
    names = iter(spec.names())
    for i in range(len(spec.events)):
        columns += [number(_added([agg.c[f"s{i}_{b}"] for b in range(last + 1)])) for last in spans]
    columns += [
        number(_added([agg.c[f"s{i}_{b}"] for i in range(kinds) for b in range(last + 1)])) for last in spans
    ]
    columns += [
        number(_added([sa.func.coalesce(days.c[f"d{b}"], 0) for b in range(last + 1)])) for last in spans
    ]
    if spec.monetary is not None:
        columns += [
            number(_added([sa.func.coalesce(agg.c[f"m{b}"], 0) for b in range(last + 1)])) for last in spans
        ]
    columns += [days_before(agg.c.last_ts), days_before(agg.c.first_ts)]
    columns = [c.label(next(names)) for c in columns]
    joined: Any = agg.outerjoin(days, days.c.k == agg.c.k)
    if spec.traits or spec.categorical:
        chosen = [t for t in workspace.traits.computed if t.key in {*spec.traits, *spec.categorical}]
        p = engine.tables.profiles
        traits = computed_query(chosen, p, p.c.profile_id, s.profile_id, source, profiles, e, at)
        traits_sub = traits.where(p.c.created_at <= at).subquery("t")
        joined = joined.outerjoin(traits_sub, traits_sub.c.profile_id == agg.c.k)
        columns += [sa.cast(traits_sub.c[key], real).label(next(names)) for key in spec.traits]
        custom = [key for key in spec.categorical if key in workspace.traits.custom]
        if custom:
            identify = e.type == "identify"
            latest = (
                sa.select(
                    s.profile_id.label("k"),
                    *[
                        PickBy(
                            value,
                            [e.timestamp, e.message_id],
                            sa.and_(identify, value.isnot(None)),
                            last=True,
                        ).label(key)
                        for key in custom
                        for value in [trait_text(e, key)]
                    ],
                )
                .select_from(source)
                .where(identify, e.timestamp <= at, profiles)
                .group_by(s.profile_id)
                .subquery("u")
            )
            joined = joined.outerjoin(latest, latest.c.k == agg.c.k)
        for key in spec.categorical:
            column = latest.c[key] if key in custom else traits_sub.c[key]
            columns.append(sa.cast(column, sa.Text).label(next(names)))
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
    engine: ComputeEngine, trait: PredictiveTrait, cutoff: datetime, as_of: datetime, every: int = 1
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
        .where(e.timestamp > cutoff, e.timestamp <= as_of, _sampled(s.profile_id, every))
        .group_by(s.profile_id)
    )


def training_query(
    engine: ComputeEngine,
    workspace: Workspace,
    trait: PredictiveTrait,
    spec: FeatureSpec,
    cutoff: datetime,
    as_of: datetime,
    every: int = 1,
) -> sa.Select[Any]:
    """Features as of `cutoff` of the population then, with the label from `(cutoff, as_of]` (of every
    `every`-th profile by id: see `feature_query`)."""
    features = feature_query(engine, workspace, trait, spec, cutoff, every).subquery("x")
    labels = label_query(engine, trait, cutoff, as_of, every).subquery("y")
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
