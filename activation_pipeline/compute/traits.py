"""Custom traits (latest identify value), account traits (latest group value) and computed traits, as SQL.

Tables (one row per profile or account, one column per trait, named by the trait key):
`custom_traits`, `computed_traits` (user level, incremental), and `account_traits`,
`account_computed_traits` (account level, always recomputed: accounts are few).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.event_columns import (
    computed_trait_columns,
    property_number,
    property_text,
    trait_text,
)
from activation_pipeline.compute.incremental import Plan, affected_events, plan_stage, stage_done
from activation_pipeline.compute.schema import Tables
from activation_pipeline.compute.sqlutil import (
    CountIf,
    PickBy,
    SortedUnique,
    agg_where,
    compare,
    create_table_as,
    drop_table,
)
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import (
    AggregationTrait,
    AnyComputedTrait,
    CounterTrait,
    FirstValueTrait,
    LastValueTrait,
    MostFrequentTrait,
    PropertyFilter,
    UniqueListTrait,
)

BUCKET_PROFILES = 1_000_000
"""A full run of computed traits aggregates at most about this many profiles per query (bounded memory)."""


@dataclass(frozen=True)
class TraitSummary:
    """Counts from one trait stage."""

    mode: str
    rows: int
    accounts: int
    recomputed: int


def property_filter(e: Any, flt: PropertyFilter) -> sa.ColumnElement[bool]:
    """A property filter on an event's typed property column (`e`: the events table's columns)."""
    return compare(property_text(e, flt.property), flt)


def _events_with_profiles(tables: Tables) -> Any:
    e, s = tables.events, tables.identity_sets
    return e.join(s, s.c.set_hash == e.c.set_hash)


def _restrict(query: sa.Select[Any], profile_column: Any, plan: Plan) -> sa.Select[Any]:
    if plan.affected is None:
        return query
    return query.where(profile_column.in_(sa.select(plan.affected.c.profile_id)))


def _replace_rows(
    conn: sa.Connection,
    engine: ComputeEngine,
    name: str,
    query: sa.Select[Any],
    plan: Plan,
    key: str = "profile_id",
) -> int:
    """Write `query` as table `name`: whole (full plan) or only the affected profiles' rows."""
    if plan.affected is None:
        create_table_as(conn, engine.schema, name, query)
    else:
        target = sa.table(name, sa.column(key), schema=engine.schema)
        conn.execute(sa.delete(target).where(target.c[key].in_(sa.select(plan.affected.c.profile_id))))
        columns = [c.name for c in query.selected_columns]
        target_cols = sa.table(name, *[sa.column(c) for c in columns], schema=engine.schema)
        conn.execute(sa.insert(target_cols).from_select(columns, query))
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(sa.table(name, schema=engine.schema))).scalar()
        or 0
    )


def _affected_count(conn: sa.Connection, plan: Plan) -> int:
    if plan.affected is None:
        return -1
    return int(conn.execute(sa.select(sa.func.count()).select_from(plan.affected)).scalar() or 0)


# ------------------------------------------------------------------------------------------ custom traits


def _latest_values(keys: list[str], e: Any, where: Any) -> list[Any]:
    columns = []
    for key in keys:
        value = trait_text(e, key)
        columns.append(
            PickBy(value, [e.timestamp, e.message_id], sa.and_(where, value.isnot(None)), last=True).label(
                key
            )
        )
    return columns


def compute_custom_traits(engine: ComputeEngine, workspace: Workspace, as_of: datetime) -> TraitSummary:
    """Custom user traits and account traits, as of `as_of`."""
    tables = engine.tables
    e, s = tables.events.c, tables.identity_sets.c
    keys = list(workspace.traits.custom)
    with engine.begin() as conn:
        plan = plan_stage(conn, engine, workspace, "custom_traits", as_of)
        is_identify = e.type == "identify"
        query = (
            sa.select(s.profile_id, *_latest_values(keys, e, is_identify))
            .select_from(_events_with_profiles(tables))
            .where(is_identify, e.timestamp <= as_of, s.profile_id.isnot(None))
            .group_by(s.profile_id)
        )
        rows = _replace_rows(conn, engine, "custom_traits", _restrict(query, s.profile_id, plan), plan)
        is_group = e.type == "group"
        account_traits = (
            sa.select(e.group_id, *_latest_values(list(workspace.traits.account), e, is_group))
            .where(is_group, e.timestamp <= as_of)
            .group_by(e.group_id)
        )
        create_table_as(conn, engine.schema, "account_traits", account_traits)
        accounts = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(sa.table("account_traits", schema=engine.schema))
            ).scalar()
            or 0
        )
        recomputed = _affected_count(conn, plan)
        stage_done(conn, engine, "custom_traits", as_of)
    return TraitSummary(plan.mode, rows, accounts, recomputed)


# ------------------------------------------------------------------------------------------ computed traits


def _condition(trait: AnyComputedTrait, e: Any, as_of: datetime) -> sa.ColumnElement[bool]:
    parts: list[Any] = [e.event == trait.event]
    if trait.window is not None:
        parts.append(e.timestamp > as_of - trait.window)
    parts += [property_filter(e, f) for f in trait.where]
    return sa.and_(*parts)


def _aggregate(trait: AnyComputedTrait, e: Any, as_of: datetime) -> Any:
    cond = _condition(trait, e, as_of)
    if isinstance(trait, CounterTrait):
        return CountIf(cond)
    if isinstance(trait, AggregationTrait):
        value = property_number(e, trait.property)
        return agg_where(trait.function, value, sa.and_(cond, value.isnot(None)))
    if isinstance(trait, FirstValueTrait | LastValueTrait):
        text = property_text(e, trait.property)
        return PickBy(
            text,
            [e.timestamp, e.message_id],
            sa.and_(cond, text.isnot(None)),
            last=isinstance(trait, LastValueTrait),
        )
    if isinstance(trait, UniqueListTrait):
        text = property_text(e, trait.property)
        return SortedUnique(text, sa.and_(cond, text.isnot(None)), trait.max_items)
    raise TypeError(f"no aggregate for {type(trait).__name__}")


def _most_frequent(trait: MostFrequentTrait, key: Any, source: Any, where: Any, e: Any) -> sa.Select[Any]:
    value = property_text(e, trait.property)
    counted = (
        sa.select(
            key.label("k"),
            value.label("value"),
            sa.func.count().label("n"),
            sa.func.max(e.timestamp).label("last_ts"),
        )
        .select_from(source)
        .where(where, value.isnot(None))
        .group_by(key, value)
        .subquery()
    )
    ranked = (
        sa.select(
            counted.c.k,
            counted.c.value,
            sa.func.row_number()
            .over(
                partition_by=counted.c.k,
                order_by=[counted.c.n.desc(), counted.c.last_ts.desc(), counted.c.value],
            )
            .label("rn"),
        )
        .where(counted.c.n >= trait.min_count)
        .subquery()
    )
    return sa.select(ranked.c.k.label(KEY), ranked.c.value.label(trait.key)).where(ranked.c.rn == 1)


KEY = "_k"
"""The profile (or account) column of a group of traits' rows: trait keys start with a letter, so none is named so."""


def trait_groups(traits: list[AnyComputedTrait]) -> list[list[AnyComputedTrait]]:
    """Traits that read the same rows (event and window), aggregated together; a most-frequent value or a unique
    list alone (their states are large)."""
    groups: dict[Any, list[AnyComputedTrait]] = {}
    for i, trait in enumerate(traits):
        alone = isinstance(trait, MostFrequentTrait | UniqueListTrait)
        groups.setdefault(i if alone else (trait.event, trait.window), []).append(trait)
    return list(groups.values())


def group_query(
    group: list[AnyComputedTrait], key: Any, source: Any, where: Any, e: Any, as_of: datetime
) -> sa.Select[Any]:
    """The values of a group of traits (`_k`, then a column per trait key), reading only their event in their window.

    One filtered aggregation per event and window, not one scan for all: a window bounds the scan (events are
    stored in time order, so older row groups are skipped), and each aggregation's state stays small.
    """
    first = group[0]
    scan = [where, e.type == "track", e.timestamp <= as_of, e.event == first.event]
    if first.window is not None:
        scan.append(e.timestamp > as_of - first.window)
    if isinstance(first, MostFrequentTrait):
        return _most_frequent(first, key, source, sa.and_(*scan, _condition(first, e, as_of)), e)
    if len(group) == 1:  # a trait alone: its property filters can narrow the scan too
        scan.append(_condition(first, e, as_of))
    aggregates = [_aggregate(t, e, as_of).label(t.key) for t in group]
    return sa.select(key.label(KEY), *aggregates).select_from(source).where(*scan).group_by(key)


def _trait_column(trait: AnyComputedTrait, value: Any) -> Any:
    """A trait's value for a base row: counts and sums of no event are 0, the rest missing."""
    if isinstance(trait, CounterTrait):
        value = sa.func.coalesce(value, 0)
    elif isinstance(trait, AggregationTrait) and trait.function == "sum":
        value = sa.func.coalesce(value, sa.cast(0, sa.Float))
    return value.label(trait.key)


def _joined(
    groups: list[list[AnyComputedTrait]], values: list[Any], base: Any, base_key: Any
) -> sa.Select[Any]:
    """One row per base row with a column per trait, from each group's rows (`_k`, trait keys)."""
    joined, columns = base, [base_key]
    for group, value in zip(groups, values, strict=True):
        joined = joined.outerjoin(value, value.c[KEY] == base_key)
        columns += [_trait_column(t, value.c[t.key]) for t in group]
    return sa.select(*columns).select_from(joined)


def computed_query(
    traits: list[AnyComputedTrait],
    base: Any,
    base_key: Any,
    key: Any,
    source: Any,
    where: Any,
    e: Any,
    as_of: datetime,
) -> sa.Select[Any]:
    """One row per base row (profiles or accounts) with a column per computed trait, as one statement."""
    groups = trait_groups(traits)
    values = [group_query(g, key, source, where, e, as_of).subquery(f"t{i}") for i, g in enumerate(groups)]
    return _joined(groups, values, base, base_key)


def _group_tables(
    conn: sa.Connection,
    schema: str,
    groups: list[list[AnyComputedTrait]],
    source: Any,
    where: Any,
    key: Any,
    e: Any,
    as_of: datetime,
    buckets: int,
) -> list[sa.TableClause]:
    """Each group's rows (`_k`, trait keys) as a work table `_computed_<i>`.

    A unique list's ordered distinct values are held in memory per profile (DuckDB does not spill them), so a
    large full run aggregates them a slice of profiles at a time; the other aggregations spill.
    """
    tables = []
    for i, group in enumerate(groups):
        table = sa.table(f"_computed_{i}", sa.column(KEY), *[sa.column(t.key) for t in group], schema=schema)
        slices = buckets if isinstance(group[0], UniqueListTrait) else 1
        for part in range(slices):
            sliced = sa.and_(where, key % slices == part) if slices > 1 else where
            query = group_query(group, key, source, sliced, e, as_of)
            if part == 0:
                create_table_as(conn, schema, table.name, query)
            else:
                conn.execute(sa.insert(table).from_select(list(table.c.keys()), query))
        tables.append(table)
    return tables


def compute_computed_traits(engine: ComputeEngine, workspace: Workspace, as_of: datetime) -> TraitSummary:
    """Every computed trait of the workspace (user and account level), as of `as_of`."""
    tables = engine.tables
    e, s = tables.events.c, tables.identity_sets.c
    user = [t for t in workspace.traits.computed if t.level == "user"]
    account = [t for t in workspace.traits.computed if t.level == "account"]
    with engine.begin() as conn:
        plan = plan_stage(conn, engine, workspace, "computed_traits", as_of)
        p = tables.profiles
        where: Any = s.profile_id.isnot(None)
        buckets = 1
        source: Any = _events_with_profiles(tables)
        key: Any = s.profile_id
        if plan.affected is not None:
            # First and last values break ties by message id.
            read = {"message_id"} | {c.name for t in user for c in computed_trait_columns(t)}
            source = affected_events(conn, tables, "_computed_events", {t.event for t in user}, read, plan)
            e, key, where = source.c, source.c.profile_id, sa.true()
        else:
            profiles = int(conn.execute(sa.select(sa.func.count()).select_from(p)).scalar() or 0)
            buckets = max(1, -(-profiles // BUCKET_PROFILES))
        groups = trait_groups(user)
        work = _group_tables(conn, engine.schema, groups, source, where, key, e, as_of, buckets)
        for part in range(buckets):
            # Large full runs join a slice of profiles at a time, so the joins' hash tables fit memory.
            values = [
                t if buckets == 1 else sa.select(t).where(t.c[KEY] % buckets == part).subquery(f"t{i}")
                for i, t in enumerate(work)
            ]
            query = _restrict(_joined(groups, values, p, p.c.profile_id), p.c.profile_id, plan)
            if buckets > 1:
                query = query.where(p.c.profile_id % buckets == part)
            if part == 0:
                rows = _replace_rows(conn, engine, "computed_traits", query, plan)
            else:
                columns = [c.name for c in query.selected_columns]
                target = sa.table("computed_traits", *[sa.column(c) for c in columns], schema=engine.schema)
                conn.execute(sa.insert(target).from_select(columns, query))
        for table in work:
            drop_table(conn, engine.schema, table.name)
        if plan.affected is not None:
            drop_table(conn, None, source.name)
        if buckets > 1:
            rows = int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(sa.table("computed_traits", schema=engine.schema))
                ).scalar()
                or 0
            )
        e, source = tables.events.c, _events_with_profiles(tables)
        au = sa.table("account_users", sa.column("group_id"), sa.column("profile_id"), schema=engine.schema)
        accounts_base = sa.select(au.c.group_id).distinct().subquery("accounts")
        account_source = source.join(au, au.c.profile_id == s.profile_id)
        account_query = computed_query(
            account,
            accounts_base,
            accounts_base.c.group_id,
            au.c.group_id,
            account_source,
            sa.true(),
            e,
            as_of,
        )
        create_table_as(conn, engine.schema, "account_computed_traits", account_query)
        accounts = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(
                    sa.table("account_computed_traits", schema=engine.schema)
                )
            ).scalar()
            or 0
        )
        recomputed = _affected_count(conn, plan)
        stage_done(conn, engine, "computed_traits", as_of)
    return TraitSummary(plan.mode, rows, accounts, recomputed)
