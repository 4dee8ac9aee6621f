"""The compute layer's facade: land events, resolve identities, compute traits and audiences, read results.

pipeline = ComputePipeline.for_workspace(load_workspace("workspace.yml"))
pipeline.land()                              # everything in the source not landed before
summary = pipeline.evaluate(as_of)           # incremental when possible; evaluate(as_of, full=True) rebuilds
pipeline.membership("high_value_recent")     # Arrow: audience_key, profile_id, as_of
pipeline.changes(as_of)                      # Arrow: audience_key, profile_id, change, as_of
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from activation_pipeline.compute import state
from activation_pipeline.compute.audiences import AudienceSummary, evaluate_audiences
from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.identity import IdentitySummary, resolve_identities
from activation_pipeline.compute.landing import LandingSummary, land_events
from activation_pipeline.compute.predictive import PredictiveSummary, compute_predictive_traits
from activation_pipeline.compute.sql_traits import SqlTraitSummary, compute_sql_traits
from activation_pipeline.compute.sqlutil import table_columns
from activation_pipeline.compute.traits import TraitSummary, compute_computed_traits, compute_custom_traits
from activation_pipeline.config import Workspace
from activation_pipeline.serving.publish import Publication, publish_serving_copy


def naive_utc(moment: datetime) -> datetime:
    """A datetime as naive UTC (naive input is taken as UTC already)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class EvaluationSummary:
    """What one evaluation did, stage by stage."""

    identity: IdentitySummary
    custom: TraitSummary
    computed: TraitSummary
    sql: SqlTraitSummary
    audiences: AudienceSummary
    predictive: PredictiveSummary
    serving: Publication


def _arrow(conn: sa.Connection, query: Any) -> pa.Table:
    result = conn.execute(query)
    names = list(result.keys())
    rows = result.all()
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})


class ComputePipeline:
    """Runs the compute stages of one workspace on its engine; every stage takes an as-of time."""

    def __init__(self, workspace: Workspace, engine: ComputeEngine | None = None) -> None:
        """Use the workspace's configured engine unless one is given (tests pass their own schema)."""
        self.workspace = workspace
        self.engine = engine or ComputeEngine.for_workspace(workspace)

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> ComputePipeline:
        """A pipeline on the workspace's configured compute engine."""
        return cls(workspace)

    def close(self) -> None:
        """Release the engine (DuckDB allows one writer)."""
        self.engine.dispose()

    # ------------------------------------------------------------------ stages

    def land(self) -> LandingSummary:
        """Land everything in the events source that was not landed before."""
        return land_events(self.engine, self.workspace)

    def resolve_identities(self, as_of: datetime) -> IdentitySummary:
        """Bring profiles up to `as_of`."""
        return resolve_identities(self.engine, self.workspace, naive_utc(as_of))

    def custom_traits(self, as_of: datetime) -> TraitSummary:
        """Custom and account traits as of `as_of`."""
        return compute_custom_traits(self.engine, self.workspace, naive_utc(as_of))

    def computed_traits(self, as_of: datetime) -> TraitSummary:
        """Computed traits as of `as_of`."""
        return compute_computed_traits(self.engine, self.workspace, naive_utc(as_of))

    def sql_traits(self, as_of: datetime) -> SqlTraitSummary:
        """SQL traits as of `as_of`."""
        return compute_sql_traits(self.engine, self.workspace, naive_utc(as_of))

    def predictive_traits(self, as_of: datetime, *, retrain: bool = False) -> PredictiveSummary:
        """Predictive traits scored as of `as_of` (models trained when due, or now with `retrain`)."""
        return compute_predictive_traits(self.engine, self.workspace, naive_utc(as_of), retrain=retrain)

    def audiences(self, as_of: datetime) -> AudienceSummary:
        """Audience membership and changes as of `as_of`."""
        return evaluate_audiences(self.engine, self.workspace, naive_utc(as_of))

    def force_full(self) -> None:
        """Make the next run rebuild profiles and recompute every trait and audience."""
        tables = self.engine.tables
        with self.engine.begin() as conn:
            state.set_flag(conn, tables, state.IDENTITY_NEEDS_FULL, True)
            state.set_flag(conn, tables, state.EVALUATION_NEEDS_FULL, True)

    def evaluate(self, as_of: datetime, *, full: bool = False) -> EvaluationSummary:
        """Run identity, every trait stage and audiences at `as_of` (incremental unless `full` or needed),
        then publish the Profile API's serving copy of the result."""
        if full:
            self.force_full()
        identity, custom = self.resolve_identities(as_of), self.custom_traits(as_of)
        computed, sql = self.computed_traits(as_of), self.sql_traits(as_of)
        predictive = self.predictive_traits(as_of)
        audiences = self.audiences(as_of)
        serving = publish_serving_copy(self.engine, self.workspace, naive_utc(as_of))
        return EvaluationSummary(identity, custom, computed, sql, audiences, predictive, serving)

    # ------------------------------------------------------------------ readers

    def read(self, query: Any) -> pa.Table:
        """Run a SELECT on the compute engine and return an Arrow table."""
        with self.engine.begin() as conn:
            return _arrow(conn, query)

    def table_query(self, name: str) -> sa.Select[Any]:
        """SELECT of a whole compute table, ordered by its first column."""
        with self.engine.begin() as conn:
            columns = table_columns(conn, self.engine.schema, name)
        t = sa.table(name, *[sa.column(c) for c in columns], schema=self.engine.schema)
        return sa.select(t).order_by(*[t.c[c] for c in columns[:1]])

    def table(self, name: str) -> pa.Table:
        """A whole compute table (e.g. `custom_traits`, `computed_traits`, `sqlt_<key>`), ordered by its first column."""
        return self.read(self.table_query(name))

    def membership_query(self, audience_key: str | None = None) -> sa.Select[Any]:
        """SELECT of the current members (audience_key, profile_id, as_of)."""
        m = self.engine.tables.membership
        query = sa.select(m).order_by(m.c.audience_key, m.c.profile_id)
        if audience_key is not None:
            query = query.where(m.c.audience_key == audience_key)
        return query

    def membership(self, audience_key: str | None = None) -> pa.Table:
        """Current members (audience_key, profile_id, as_of)."""
        return self.read(self.membership_query(audience_key))

    def changes(self, as_of: datetime | None = None, audience_key: str | None = None) -> pa.Table:
        """Entered/exited changes (audience_key, profile_id, change, as_of), optionally of one run or audience."""
        c = self.engine.tables.changes
        query = sa.select(c).order_by(c.c.as_of, c.c.audience_key, c.c.change, c.c.profile_id)
        if as_of is not None:
            query = query.where(c.c.as_of == naive_utc(as_of))
        if audience_key is not None:
            query = query.where(c.c.audience_key == audience_key)
        return self.read(query)

    def identities_query(self) -> sa.Select[Any]:
        """SELECT of the identity graph (profile_id, identifier_type, value, first_seen, last_seen)."""
        i = self.engine.tables.identities
        return (
            sa.select(i.c.profile_id, i.c.identifier_type, i.c.value, i.c.first_seen, i.c.last_seen)
            .where(i.c.profile_id.isnot(None))
            .order_by(i.c.profile_id, i.c.identifier_type, i.c.first_seen, i.c.value)
        )

    def identities(self) -> pa.Table:
        """The identity graph (profile_id, identifier_type, value, first_seen, last_seen) of attached identifiers."""
        return self.read(self.identities_query())

    def quarantine(self) -> pa.Table:
        """Quarantined lines (source, line, reason, raw, batch)."""
        q = self.engine.tables.quarantine
        return self.read(sa.select(q).order_by(q.c.source, q.c.line))
