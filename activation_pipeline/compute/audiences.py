"""Audiences: condition trees compiled to SQLAlchemy Core, membership as of a time, and entered/exited changes.

User audiences are evaluated per profile; account audiences per account (group id), and their members are
the users of qualifying accounts. `historical: false` audiences count only events at or after `created_at`.
A comparison on a missing trait is false (except `not_exists`); wrap it in `not:` for the opposite.

Changes are computed against the previous snapshot after mapping its profile ids through
`profile_aliases`, so a profile that merged or gained an identifier while staying a member is not
"entered" again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.event_columns import event_condition_columns
from activation_pipeline.compute.incremental import (
    Plan,
    affected_events,
    finish_evaluation,
    plan_stage,
    require_stages,
)
from activation_pipeline.compute.schema import PREDICTIVE_TABLE, Tables
from activation_pipeline.compute.sqlutil import CountIf, compare, create_table_as, drop_table
from activation_pipeline.compute.traits import property_filter
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import (
    AllCondition,
    AnyCondition,
    Audience,
    AudienceCondition,
    EventCondition,
    NotCondition,
    TraitCondition,
    UniqueListTrait,
)
from activation_pipeline.config.rules import walk_conditions


@dataclass(frozen=True)
class AudienceResult:
    """One audience's figures at an as-of time."""

    key: str
    level: str
    size: int
    previous_size: int | None
    entered: int
    exited: int
    duplicates: int
    max_size_change: float

    @property
    def size_change(self) -> float | None:
        """Relative size change against the previous run (None on the first run or from empty)."""
        if not self.previous_size:
            return None
        return abs(self.size - self.previous_size) / self.previous_size

    @property
    def size_change_flagged(self) -> bool:
        """True when the size moved more than the audience's `max_size_change` share."""
        change = self.size_change
        return change is not None and change > self.max_size_change


@dataclass(frozen=True)
class AudienceSummary:
    """Results of one audience evaluation."""

    mode: str
    as_of: datetime
    audiences: list[AudienceResult]
    recomputed: int


@dataclass(frozen=True)
class TraitRef:
    """Where a trait lives: table, key column, and whether it is a list."""

    table: str
    key_column: str
    is_list: bool = False


def trait_refs(workspace: Workspace, level: str) -> dict[str, TraitRef]:
    """Trait key -> table holding it, for user or account level."""
    key = "group_id" if level == "account" else "profile_id"
    refs: dict[str, TraitRef] = {}
    custom = workspace.traits.account if level == "account" else workspace.traits.custom
    for name in custom:
        refs[name] = TraitRef("account_traits" if level == "account" else "custom_traits", key)
    for trait in workspace.traits.computed:
        if trait.level == level:
            table = "account_computed_traits" if level == "account" else "computed_traits"
            refs[trait.key] = TraitRef(table, key, isinstance(trait, UniqueListTrait))
    for sql in workspace.traits.sql:
        if sql.level == level:
            for k in sql.trait_keys:
                refs[k] = TraitRef(f"sqlt_{sql.key}", key)
    if level == "user":
        for predictive in workspace.traits.predictive:
            for k in predictive.trait_keys:
                refs[k] = TraitRef(PREDICTIVE_TABLE, key)
    return refs


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _event_signature(audience: Audience, node: EventCondition) -> str:
    since = None if audience.historical else _utc(audience.created_at)
    return json.dumps(
        [
            node.event,
            node.within.total_seconds() if node.within else None,
            [f.model_dump(mode="json") for f in node.where],
            since.isoformat() if since else None,
        ],
        sort_keys=True,
    )


def topological(audiences: list[Audience]) -> list[Audience]:
    """Audiences ordered so that each comes after the audiences its conditions refer to."""
    by_key = {a.key: a for a in audiences}
    ordered: list[Audience] = []
    done: set[str] = set()

    def visit(audience: Audience, path: tuple[str, ...]) -> None:
        if audience.key in done or audience.key in path:
            return
        for _, node in walk_conditions(audience.where):
            if isinstance(node, AudienceCondition) and node.audience in by_key:
                visit(by_key[node.audience], (*path, audience.key))
        done.add(audience.key)
        ordered.append(audience)

    for audience in audiences:
        visit(audience, ())
    return ordered


class _Counts:
    """The event conditions of a set of audiences, counted per profile or account (one column each)."""

    def __init__(self, audiences: list[Audience]) -> None:
        self.columns: dict[str, str] = {}
        self.specs: list[tuple[str, Audience, EventCondition]] = []
        for audience in audiences:
            for _, node in walk_conditions(audience.where):
                if isinstance(node, EventCondition):
                    signature = _event_signature(audience, node)
                    if signature not in self.columns:
                        name = f"c{len(self.columns)}"
                        self.columns[signature] = name
                        self.specs.append((name, audience, node))

    def column(self, audience: Audience, node: EventCondition) -> str:
        """The count column of an event condition."""
        return self.columns[_event_signature(audience, node)]

    def events(self) -> set[str]:
        """The events the conditions count."""
        return {node.event for _, _, node in self.specs}

    def columns_read(self) -> set[str]:
        """The event columns the conditions' filters read."""
        return {c.name for _, _, node in self.specs for c in event_condition_columns(node)}

    def queries(
        self, e: Any, key: Any, source: Any, where: Any, as_of: datetime
    ) -> list[tuple[list[str], sa.Select[Any]]]:
        """The count columns per key (`k`, then one per column), one aggregation per event and time bound.

        Conditions on the same event over the same window share an aggregation, and each aggregation reads only
        its window: events are stored in time order, so its lower bound skips the older row groups. `e` holds
        the columns of `source`'s events.
        """
        groups: dict[Any, list[tuple[str, list[Any]]]] = {}
        for name, audience, node in self.specs:
            created = None if audience.historical else audience.created_at
            filters = [property_filter(e, f) for f in node.where]
            groups.setdefault((node.event, node.within, created), []).append((name, filters))
        queries = []
        for (event, within, created), counted in groups.items():
            scan: list[Any] = [where, e.type == "track", e.timestamp <= as_of, e.event == event]
            if within is not None:
                scan.append(e.timestamp > as_of - within)
            if created is not None:
                scan.append(e.timestamp >= _utc(created))
            counts = [
                (CountIf(sa.and_(*filters)) if filters else sa.func.count()).label(name)
                for name, filters in counted
            ]
            query = sa.select(key.label("k"), *counts).select_from(source).where(*scan).group_by(key)
            queries.append(([name for name, _ in counted], query))
        return queries

    def store(
        self,
        conn: sa.Connection,
        schema: str,
        prefix: str,
        queries: list[tuple[list[str], sa.Select[Any]]],
    ) -> dict[str, sa.TableClause]:
        """Each count query as a work table `<prefix><i>(k, columns...)`; the table of each count column."""
        counted = {}
        for i, (names, query) in enumerate(queries):
            create_table_as(conn, schema, f"{prefix}{i}", query)
            table = sa.table(f"{prefix}{i}", sa.column("k"), *[sa.column(n) for n in names], schema=schema)
            counted.update(dict.fromkeys(names, table))
        return counted


class _ConditionCompiler:
    """Compiles one audience's condition tree against a base table of profiles or accounts."""

    def __init__(
        self,
        engine: ComputeEngine,
        audience: Audience,
        refs: dict[str, TraitRef],
        counts: _Counts,
        base_key: Any,
        counts_tables: dict[str, sa.TableClause],
        member_table: sa.TableClause,
    ) -> None:
        self.engine = engine
        self.audience = audience
        self.refs = refs
        self.counts = counts
        self.base_key = base_key
        self.counts_tables = counts_tables
        self.member_table = member_table
        self.joins: dict[str, sa.TableClause] = {}

    def _trait_table(self, ref: TraitRef, columns: list[str]) -> sa.TableClause:
        if ref.table not in self.joins:
            self.joins[ref.table] = sa.table(ref.table, sa.column(ref.key_column), schema=self.engine.schema)
        table = self.joins[ref.table]
        for c in columns:
            if c not in table.c:
                table.append_column(sa.column(c))
        return table

    def compile(self, node: Any) -> sa.ColumnElement[bool]:
        """The boolean SQL expression of a condition node."""
        if isinstance(node, AllCondition):
            return sa.and_(*[self.compile(c) for c in node.all])
        if isinstance(node, AnyCondition):
            return sa.or_(*[self.compile(c) for c in node.any])
        if isinstance(node, NotCondition):
            return sa.not_(self.compile(node.not_))
        if isinstance(node, EventCondition):
            column = self.counts.column(self.audience, node)
            counted = self.counts_tables[column]
            self.joins.setdefault(counted.name, counted)
            n = sa.func.coalesce(counted.c[column], 0)
            parts = [n >= node.min_count]
            if node.at_most is not None:
                parts.append(n <= node.at_most)
            return sa.and_(*parts)
        if isinstance(node, TraitCondition):
            ref = self.refs[node.trait]
            table = self._trait_table(ref, [node.trait])
            return compare(table.c[node.trait], node, is_list=ref.is_list)
        if isinstance(node, AudienceCondition):
            m = self.member_table
            return self.base_key.in_(sa.select(m.c.member).where(m.c.audience_key == node.audience))
        raise TypeError(f"unknown condition {type(node).__name__}")

    def select(self, base: Any, where: Any) -> sa.Select[Any]:
        """The members (column `member`) of the base rows satisfying the audience's condition."""
        condition = self.compile(self.audience.where)
        joined = base
        for table in self.joins.values():
            key = next(iter(table.c))
            joined = joined.outerjoin(table, key == self.base_key)
        return sa.select(self.base_key.label("member")).select_from(joined).where(where, condition)


def _mapped(tables: Tables, snapshot: sa.Table, key: str) -> sa.Select[Any]:
    """A snapshot's members for one audience, with merged-away ids replaced by their surviving ids."""
    a = tables.profile_aliases
    return (
        sa.select(sa.func.coalesce(a.c.profile_id, snapshot.c.profile_id).label("profile_id"))
        .select_from(snapshot.outerjoin(a, a.c.old_profile_id == snapshot.c.profile_id))
        .where(snapshot.c.audience_key == key)
        .distinct()
    )


def _count(conn: sa.Connection, query: Any) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar() or 0)


def evaluate_audiences(engine: ComputeEngine, workspace: Workspace, as_of: datetime) -> AudienceSummary:
    """Compute every audience's membership as of `as_of` and its changes against the previous snapshot."""
    tables = engine.tables
    schema = engine.schema
    e, s = tables.events.c, tables.identity_sets.c
    with engine.begin() as conn:
        require_stages(conn, engine, workspace, as_of)
        plan: Plan = plan_stage(conn, engine, workspace, "audiences", as_of)
        current_as_of = conn.execute(sa.select(sa.func.max(tables.membership.c.as_of))).scalar()
        had_previous = current_as_of is not None
        if current_as_of != as_of:
            conn.execute(sa.delete(tables.membership_previous))
            conn.execute(sa.insert(tables.membership_previous).from_select(
                ["audience_key", "profile_id", "as_of"], sa.select(tables.membership)))  # fmt: skip
            incremental_base = tables.membership_previous
        else:
            incremental_base = tables.membership
            had_previous = (
                conn.execute(sa.select(sa.func.count()).select_from(tables.membership_previous)).scalar() != 0
            )
        changes_base = tables.membership_previous

        members = sa.table("_membership_new", sa.column("audience_key"), sa.column("member"), schema=schema)
        create_table_as(
            conn, schema, "_membership_new",
            sa.select(sa.literal("", sa.Text).label("audience_key"), sa.cast(sa.literal(0), sa.BigInteger).label("member")).where(sa.false()),
        )  # fmt: skip
        accounts_qualified = sa.table(
            "_account_qualified", sa.column("audience_key"), sa.column("member"), schema=schema
        )
        create_table_as(
            conn, schema, "_account_qualified",
            sa.select(sa.literal("", sa.Text).label("audience_key"), sa.cast(sa.literal(""), sa.Text).label("member")).where(sa.false()),
        )  # fmt: skip

        user_audiences = [a for a in workspace.audiences if a.level == "user"]
        account_audiences = [a for a in workspace.audiences if a.level == "account"]
        source = tables.events.join(tables.identity_sets, s.set_hash == e.set_hash)
        user_counts = _Counts(user_audiences)
        counted = None
        if plan.affected is None:
            count_queries = user_counts.queries(e, s.profile_id, source, s.profile_id.isnot(None), as_of)
        else:
            counted = affected_events(
                conn, tables, "_counted_events", user_counts.events(), user_counts.columns_read(), plan
            )
            count_queries = user_counts.queries(counted.c, counted.c.profile_id, counted, sa.true(), as_of)
        counts_tables = user_counts.store(conn, schema, "_event_count_", count_queries)
        au = sa.table("account_users", sa.column("group_id"), sa.column("profile_id"), schema=schema)
        account_counts = _Counts(account_audiences)
        account_source = source.join(au, au.c.profile_id == s.profile_id)
        account_counts_tables = account_counts.store(
            conn,
            schema,
            "_account_event_count_",
            account_counts.queries(e, au.c.group_id, account_source, sa.true(), as_of),
        )
        at = sa.table("account_traits", sa.column("group_id"), schema=schema)
        accounts = sa.union(sa.select(au.c.group_id), sa.select(at.c.group_id)).subquery("accounts")

        user_refs, account_refs = trait_refs(workspace, "user"), trait_refs(workspace, "account")
        p = tables.profiles
        for audience in topological(workspace.audiences):
            if audience.level == "account":
                compiler = _ConditionCompiler(
                    engine,
                    audience,
                    account_refs,
                    account_counts,
                    accounts.c.group_id,
                    account_counts_tables,
                    accounts_qualified,
                )
                qualified = compiler.select(accounts, sa.true())
                conn.execute(
                    sa.insert(accounts_qualified).from_select(
                        ["audience_key", "member"],
                        sa.select(sa.literal(audience.key, sa.Text), qualified.subquery().c.member),
                    )
                )
                users = (
                    sa.select(sa.literal(audience.key, sa.Text), au.c.profile_id)
                    .where(
                        au.c.group_id.in_(
                            sa.select(accounts_qualified.c.member).where(
                                accounts_qualified.c.audience_key == audience.key
                            )
                        )
                    )
                    .distinct()
                )
                conn.execute(sa.insert(members).from_select(["audience_key", "member"], users))
                continue
            compiler = _ConditionCompiler(
                engine, audience, user_refs, user_counts, p.c.profile_id, counts_tables, members
            )
            base_where: Any = sa.true()
            if plan.affected is not None:
                base_where = p.c.profile_id.in_(sa.select(plan.affected.c.profile_id))
            evaluated = compiler.select(p, base_where).subquery()
            conn.execute(
                sa.insert(members).from_select(
                    ["audience_key", "member"],
                    sa.select(sa.literal(audience.key, sa.Text), evaluated.c.member),
                )
            )
            if plan.affected is not None:
                kept = _mapped(tables, incremental_base, audience.key).subquery()
                conn.execute(
                    sa.insert(members).from_select(
                        ["audience_key", "member"],
                        sa.select(sa.literal(audience.key, sa.Text), kept.c.profile_id).where(
                            kept.c.profile_id.notin_(sa.select(plan.affected.c.profile_id))
                        ),
                    )
                )

        conn.execute(sa.delete(tables.changes).where(tables.changes.c.as_of == as_of))
        conn.execute(sa.delete(tables.audience_runs).where(tables.audience_runs.c.as_of == as_of))
        results = []
        for audience in workspace.audiences:
            key = audience.key
            new = sa.select(members.c.member).where(members.c.audience_key == key)
            before = _mapped(tables, changes_base, key).subquery()
            entered = new.where(members.c.member.notin_(sa.select(before.c.profile_id)))
            exited = sa.select(before.c.profile_id).where(before.c.profile_id.notin_(new))
            for change, query in (("entered", entered), ("exited", exited)):
                rows = query.subquery()
                conn.execute(
                    sa.insert(tables.changes).from_select(
                        ["audience_key", "profile_id", "change", "as_of"],
                        sa.select(
                            sa.literal(key, sa.Text),
                            rows.c[0],
                            sa.literal(change, sa.Text),
                            sa.literal(as_of, sa.DateTime),
                        ),
                    )
                )
            c = tables.changes.c
            n_entered = int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        c.audience_key == key, c.as_of == as_of, c.change == "entered"
                    )
                ).scalar()
                or 0
            )
            n_exited = int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        c.audience_key == key, c.as_of == as_of, c.change == "exited"
                    )
                ).scalar()
                or 0
            )
            size = _count(conn, new)
            dup_query = new.group_by(members.c.member).having(sa.func.count() > 1)
            duplicates = _count(conn, dup_query)
            previous_size = (
                _count(conn, sa.select(changes_base.c.profile_id).where(changes_base.c.audience_key == key))
                if had_previous
                else None
            )
            results.append(
                AudienceResult(
                    key,
                    audience.level,
                    size,
                    previous_size,
                    n_entered,
                    n_exited,
                    duplicates,
                    audience.max_size_change,
                )
            )
            conn.execute(
                sa.insert(tables.audience_runs).values(
                    audience_key=key, as_of=as_of, size=size, previous_size=previous_size,
                    entered=n_entered, exited=n_exited, duplicates=duplicates,
                )
            )  # fmt: skip

        conn.execute(sa.delete(tables.membership))
        conn.execute(
            sa.insert(tables.membership).from_select(
                ["audience_key", "profile_id", "as_of"],
                sa.select(members.c.audience_key, members.c.member, sa.literal(as_of, sa.DateTime)),
            )
        )
        recomputed = (
            -1
            if plan.affected is None
            else int(conn.execute(sa.select(sa.func.count()).select_from(plan.affected)).scalar() or 0)
        )
        for name in {t.name for t in (*counts_tables.values(), *account_counts_tables.values())}:
            drop_table(conn, schema, name)
        if counted is not None:
            drop_table(conn, None, counted.name)
        drop_table(conn, schema, "_membership_new")
        create_table_as(
            conn,
            schema,
            "account_audience_accounts",
            sa.select(accounts_qualified.c.audience_key, accounts_qualified.c.member.label("group_id")),
        )
        drop_table(conn, schema, "_account_qualified")
        finish_evaluation(conn, engine, workspace, plan)
    return AudienceSummary(plan.mode, as_of, results, recomputed)
