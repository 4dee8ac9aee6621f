"""The queries that turn an evaluation's results into the serving copy's rows, on the compute engine.

Each profile becomes one row holding its traits per class, audiences, external ids and accounts as JSON
text, so the service answers a request with one indexed read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.schema import PREDICTIVE_TABLE
from activation_pipeline.compute.sqlutil import table_columns, table_names
from activation_pipeline.config import Workspace
from activation_pipeline.serving.layout import KEY_SEPARATOR, PROFILE_PREFIX
from activation_pipeline.serving.sqljson import (
    iso_text,
    json_group_array,
    json_group_object,
    json_object,
    json_text,
)


class ServingQueries:
    """Builds the SELECTs of one publication from the compute tables that exist now.

    With `only` (a SELECT of profile ids), the per-profile rows (lookup, documents, events) of those profiles
    alone, to replace theirs in a copy of the previous version.
    """

    def __init__(
        self,
        conn: sa.Connection,
        engine: ComputeEngine,
        workspace: Workspace,
        as_of: datetime,
        only: sa.Select[Any] | None = None,
    ) -> None:
        self.conn = conn
        self.engine = engine
        self.workspace = workspace
        self.as_of = as_of
        self.only = only
        self.dialect = conn.dialect.name
        self.present = table_names(conn, engine.schema)

    def _of_profiles(self, column: Any) -> Any:
        """True for the profiles this publication writes."""
        return sa.true() if self.only is None else column.in_(self.only)

    def _table(self, name: str) -> sa.TableClause | None:
        if name not in self.present:
            return None
        columns = table_columns(self.conn, self.engine.schema, name)
        return sa.table(name, *[sa.column(c) for c in columns], schema=self.engine.schema)

    def _trait_tables(self, names: Sequence[str], key: str) -> list[sa.TableClause]:
        return [t for t in (self._table(n) for n in names) if t is not None and key in t.c]

    def _object_of(self, tables: Sequence[sa.TableClause], key: str) -> sa.ColumnElement[Any]:
        pairs = [(c.name, c) for t in tables for c in t.c if c.name != key]
        return json_object(self.dialect, pairs)

    def _sql_tables(self, level: str) -> list[str]:
        return [f"sqlt_{t.key}" for t in self.workspace.traits.sql if t.level == level]

    def lookup(self) -> sa.Select[Any]:
        """key (`type:value`, or `use_<id>` for profile ids old and current) -> surviving profile id."""
        t = self.engine.tables
        i, p, a = t.identities.c, t.profiles.c, t.profile_aliases.c
        by_identifier = sa.select(
            (i.identifier_type + KEY_SEPARATOR + i.value).label("key"), i.profile_id
        ).where(i.profile_id.isnot(None), self._of_profiles(i.profile_id))
        by_profile = sa.select(
            (sa.literal(PROFILE_PREFIX) + sa.cast(p.profile_id, sa.Text)).label("key"), p.profile_id
        ).where(self._of_profiles(p.profile_id))
        by_alias = (
            sa.select(
                (sa.literal(PROFILE_PREFIX) + sa.cast(a.old_profile_id, sa.Text)).label("key"), a.profile_id
            )
            .where(a.old_profile_id != a.profile_id, self._of_profiles(a.profile_id))
            .distinct()
        )
        union = sa.union_all(by_identifier, by_profile, by_alias).subquery()
        return sa.select(union.c.key, union.c.profile_id).order_by(union.c.key)

    def _audiences(self) -> sa.Subquery:
        """profile_id -> {audience_key: true for members, false for those who exited and are not back}."""
        m, c = self.engine.tables.membership.c, self.engine.tables.changes
        members = sa.select(m.profile_id, m.audience_key, sa.literal(True).label("member")).where(
            self._of_profiles(m.profile_id)
        )
        ever = (
            sa.select(c.c.profile_id, c.c.audience_key)
            .where(c.c.change == "exited", self._of_profiles(c.c.profile_id))
            .distinct()
            .subquery()
        )
        exited = sa.select(ever.c.profile_id, ever.c.audience_key, sa.literal(False).label("member")).where(
            ~sa.exists().where(m.profile_id == ever.c.profile_id, m.audience_key == ever.c.audience_key)
        )
        rows = sa.union_all(members, exited).subquery()
        return (
            sa.select(
                rows.c.profile_id,
                json_group_object(self.dialect, rows.c.audience_key, rows.c.member).label("doc"),
            )
            .group_by(rows.c.profile_id)
            .subquery()
        )

    def _external_ids(self) -> sa.Subquery:
        i = self.engine.tables.identities.c
        entry = json_object(
            self.dialect,
            [
                ("id", i.value),
                ("type", i.identifier_type),
                ("created_at", iso_text(self.dialect, i.first_seen)),
            ],
        )
        return (
            sa.select(
                i.profile_id,
                iso_text(self.dialect, sa.func.max(i.last_seen)).label("updated_at"),
                json_group_array(self.dialect, entry).label("doc"),
            )
            .where(i.profile_id.isnot(None), self._of_profiles(i.profile_id))
            .group_by(i.profile_id)
            .subquery()
        )

    def _memberships(self) -> sa.Subquery:
        """(group_id, profile_id, first group call) of users and their accounts as of the evaluation."""
        e, s = self.engine.tables.events.c, self.engine.tables.identity_sets.c
        return (
            sa.select(e.group_id, s.profile_id, sa.func.min(e.timestamp).label("since"))
            .select_from(
                self.engine.tables.events.join(self.engine.tables.identity_sets, s.set_hash == e.set_hash)
            )
            .where(
                e.type == "group", e.group_id.isnot(None), e.timestamp <= self.as_of, s.profile_id.isnot(None)
            )
            .group_by(e.group_id, s.profile_id)
            .subquery()
        )

    def _profile_memberships(self) -> sa.Subquery:
        """`_memberships` of the profiles this publication writes."""
        joined = self._memberships()
        return sa.select(joined).where(self._of_profiles(joined.c.profile_id)).subquery()

    def _grouped(self, key: Any, other: Any, since: Any, name: str) -> sa.Select[Any]:
        entry = json_object(self.dialect, [(name, other), ("created_at", iso_text(self.dialect, since))])
        return sa.select(key, json_group_array(self.dialect, entry).label("doc")).group_by(key)

    def profile_parts(self) -> dict[str, sa.Select[Any]]:
        """The per-profile sub-documents (audiences, external ids, accounts): `doc` (and more) by profile_id.

        Each is an aggregation over all profiles; publishing builds them one at a time into tables of their
        own, so their aggregate states (which DuckDB cannot spill) are never all in memory at once.
        """
        joined = self._profile_memberships()
        accounts = self._grouped(joined.c.profile_id, joined.c.group_id, joined.c.since, "group_id")
        return {
            "audiences": sa.select(self._audiences()),
            "external_ids": sa.select(self._external_ids()),
            "accounts": accounts,
        }

    def profiles(self, parts: dict[str, sa.TableClause]) -> sa.Select[Any]:
        """One row per profile: its document (traits by class, audiences, external ids, accounts) as JSON text.

        `parts` holds the tables `profile_parts` was written to, by the same names.
        """
        p = self.engine.tables.profiles
        custom = self._trait_tables(["custom_traits"], "profile_id")
        computed = self._trait_tables(["computed_traits"], "profile_id")
        sql = self._trait_tables(self._sql_tables("user"), "profile_id")
        predictive = self._trait_tables([PREDICTIVE_TABLE], "profile_id")
        audiences, ids, accounts = parts["audiences"], parts["external_ids"], parts["accounts"]
        source: Any = p
        for t in [*custom, *computed, *sql, *predictive]:
            source = source.outerjoin(t, t.c.profile_id == p.c.profile_id)
        for sub in (audiences, ids, accounts):
            source = source.outerjoin(sub, sub.c.profile_id == p.c.profile_id)
        doc = json_object(
            self.dialect,
            [
                ("created_at", iso_text(self.dialect, p.c.created_at)),
                ("updated_at", ids.c.updated_at),
                ("custom", self._object_of(custom, "profile_id")),
                ("computed", self._object_of(computed, "profile_id")),
                ("sql", self._object_of(sql, "profile_id")),
                ("predictive", self._object_of(predictive, "profile_id")),
                ("audiences", audiences.c.doc),
                ("external_ids", ids.c.doc),
                ("accounts", accounts.c.doc),
            ],
        )
        return (
            sa.select(p.c.profile_id, json_text(doc).label("doc"))
            .select_from(source)
            .where(self._of_profiles(p.c.profile_id))
            .order_by(p.c.profile_id)
        )

    def accounts(self) -> sa.Select[Any]:
        """One row per account: its document (traits by class, its users) as JSON text."""
        joined = self._memberships()
        users = self._grouped(joined.c.group_id, joined.c.profile_id, joined.c.since, "profile_id").subquery()
        since = sa.select(joined.c.group_id, sa.func.min(joined.c.since).label("since")).group_by(
            joined.c.group_id
        )
        custom = self._trait_tables(["account_traits"], "group_id")
        computed = self._trait_tables(["account_computed_traits"], "group_id")
        sql = self._trait_tables(self._sql_tables("account"), "group_id")
        keys = [sa.select(t.c.group_id) for t in [*custom, *computed, *sql]] + [sa.select(users.c.group_id)]
        groups = sa.union(*keys).subquery()
        first = since.subquery()
        source: Any = groups.outerjoin(users, users.c.group_id == groups.c.group_id).outerjoin(
            first, first.c.group_id == groups.c.group_id
        )
        for t in [*custom, *computed, *sql]:
            source = source.outerjoin(t, t.c.group_id == groups.c.group_id)
        doc = json_object(
            self.dialect,
            [
                ("created_at", iso_text(self.dialect, first.c.since)),
                ("custom", self._object_of(custom, "group_id")),
                ("computed", self._object_of(computed, "group_id")),
                ("sql", self._object_of(sql, "group_id")),
                ("users", users.c.doc),
            ],
        )
        return (
            sa.select(groups.c.group_id, json_text(doc).label("doc"))
            .select_from(source)
            .where(groups.c.group_id.isnot(None))
            .order_by(groups.c.group_id)
        )

    def events_since(self) -> datetime:
        """Events after this time (up to the evaluation time) are served."""
        return self.as_of - timedelta(days=self.workspace.serving.events_days)

    def events(self) -> sa.Select[Any]:
        """The events of the last `serving.events_days` days up to the evaluation time, by profile and time."""
        t = self.engine.tables
        e, s = t.events.c, t.identity_sets.c
        since = self.events_since()
        return (
            sa.select(
                s.profile_id,
                e.timestamp,
                e.message_id,
                e.type,
                e.event,
                e.user_id,
                e.anonymous_id,
                e.group_id,
                sa.cast(e.properties, sa.Text).label("properties"),
                sa.cast(e.context, sa.Text).label("context"),
                sa.cast(e.traits, sa.Text).label("traits"),
            )
            .select_from(t.events.join(t.identity_sets, s.set_hash == e.set_hash))
            .where(
                e.timestamp > since,
                e.timestamp <= self.as_of,
                s.profile_id.isnot(None),
                self._of_profiles(s.profile_id),
            )
            .order_by(s.profile_id, e.timestamp, e.message_id)
        )
