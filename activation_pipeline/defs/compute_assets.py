"""Dagster assets of the compute layer: events -> profiles -> traits -> audiences, with checks and metadata.

Every asset is a thin call into `activation_pipeline.compute`; the evaluation time comes from the run tag
`activation/as_of` (see `as_of_from_context`). Metadata holds counts only, never identifiers or traits.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.defs.resources import WorkspaceResource, as_of_from_context

GROUP_INGEST, GROUP_IDENTITY, GROUP_TRAITS, GROUP_AUDIENCES = "ingest", "identity", "traits", "audiences"
KINDS = {"sql", "duckdb"}
CHECK_UNIQUE = "members_unique"
CHECK_SIZE = "size_change"
FULL_TAG = "activation/full"
"""Run tag: `true` rebuilds profiles and recomputes every trait and audience instead of an incremental run."""


@contextmanager
def _pipeline(workspace: WorkspaceResource) -> Iterator[ComputePipeline]:
    pipeline = ComputePipeline(workspace.workspace)
    try:
        yield pipeline
    finally:
        pipeline.close()  # DuckDB has one writer: never hold the file between assets


@dg.asset(
    group_name=GROUP_INGEST,
    kinds=KINDS,
    description=(
        "Segment-spec messages landed in the compute engine: every file (or warehouse row) not landed before, "
        "whatever dates its events carry; unusable ones quarantined with their reason."
    ),
)
def events(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    """Land everything new in the events source in one run (new, appended and changed files)."""
    with _pipeline(workspace) as pipeline:
        s = pipeline.land()
    context.log.info(
        f"{s.events} events landed from {s.new_sources} new, {s.appended_sources} appended and "
        f"{s.changed_sources} changed sources ({s.unchanged_sources} unchanged); {s.quarantined} quarantined, "
        f"{s.duplicates} duplicates, {s.seconds:.1f} s"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": s.events_total,
            "events": s.events,
            "events_total": s.events_total,
            "quarantined": s.quarantined,
            "duplicates": s.duplicates,
            "new_sources": s.new_sources,
            "appended_sources": s.appended_sources,
            "changed_sources": s.changed_sources,
            "unchanged_sources": s.unchanged_sources,
            "seconds": round(s.seconds, 3),
            "events_per_second": round(s.events / s.seconds) if s.seconds else 0,
            "quarantine_reasons": dg.MetadataValue.json(s.reasons),
        }
    )


@dg.asset(
    deps=[events],
    group_name=GROUP_IDENTITY,
    kinds=KINDS,
    description="Identity graph: identifiers seen together merged into profiles, within limits.",
)
def profiles(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    """Resolve identities of all landed events up to the run's as-of time."""
    as_of = as_of_from_context(context)
    with _pipeline(workspace) as pipeline:
        if (context.run.tags.get(FULL_TAG) if context.run else None) == "true":
            pipeline.force_full()
        s = pipeline.resolve_identities(as_of)
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "mode": s.mode,
            "dagster/row_count": s.profiles,
            "profiles": s.profiles,
            "identifiers": s.identifiers,
            "identifier_sets": s.sets_processed,
            "new_identifier_sets": s.new_sets,
            "profiles_created": s.profiles_created,
            "merges": s.merges,
            "dropped_by_limit": s.limited,
            "blocked_values_seen": s.blocked,
            "affected_profiles": s.affected,
        }
    )


@dg.asset(
    deps=[profiles],
    group_name=GROUP_TRAITS,
    kinds=KINDS,
    description="Custom traits (latest identify value) and account traits (latest group value).",
)
def custom_traits(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    """Compute custom user traits and account traits as of the run's time."""
    as_of = as_of_from_context(context)
    with _pipeline(workspace) as pipeline:
        s = pipeline.custom_traits(as_of)
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "mode": s.mode,
            "dagster/row_count": s.rows,
            "profiles": s.rows,
            "accounts": s.accounts,
            "recomputed_profiles": s.recomputed,
        }
    )


@dg.asset(
    deps=[profiles],
    group_name=GROUP_TRAITS,
    kinds=KINDS,
    description="Computed traits: counters, aggregations, most frequent, first/last value, unique lists.",
)
def computed_traits(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    """Compute every computed trait as of the run's time (incrementally when possible)."""
    as_of = as_of_from_context(context)
    with _pipeline(workspace) as pipeline:
        s = pipeline.computed_traits(as_of)
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "mode": s.mode,
            "dagster/row_count": s.rows,
            "profiles": s.rows,
            "accounts": s.accounts,
            "recomputed_profiles": s.recomputed,
        }
    )


@dg.asset(
    deps=[profiles],
    group_name=GROUP_TRAITS,
    kinds=KINDS,
    description="SQL traits: the workspace's queries on its warehouse, rows mapped to profiles.",
)
def sql_traits(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    """Run every SQL trait query and map its rows to profiles."""
    as_of = as_of_from_context(context)
    with _pipeline(workspace) as pipeline:
        s = pipeline.sql_traits(as_of)
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "dagster/row_count": s.mapped,
            "queries": s.traits,
            "rows": s.rows,
            "mapped_rows": s.mapped,
            "unmatched_rows": s.unmatched,
            "changed_profiles": s.changed,
        }
    )


@dg.asset(
    deps=[custom_traits, computed_traits, sql_traits],
    group_name=GROUP_AUDIENCES,
    kinds=KINDS,
    description="Audience membership as of the run's time, with who entered and exited since the last run.",
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_UNIQUE, asset="audiences", blocking=True, description="No profile twice in an audience."
        ),
        dg.AssetCheckSpec(
            CHECK_SIZE,
            asset="audiences",
            description="Warns when an audience's size moved more than its max_size_change share since the last run.",
        ),
    ],
)
def audiences(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    """Evaluate every audience; report per-audience size, entered and exited."""
    as_of = as_of_from_context(context)
    with _pipeline(workspace) as pipeline:
        s = pipeline.audiences(as_of)
    metadata: dict[str, dg.RawMetadataValue] = {
        "as_of": as_of.isoformat(),
        "mode": s.mode,
        "audiences": len(s.audiences),
        "dagster/row_count": sum(a.size for a in s.audiences),
        "recomputed_profiles": s.recomputed,
    }
    for a in s.audiences:
        metadata[f"{a.key}/size"] = a.size
        metadata[f"{a.key}/entered"] = a.entered
        metadata[f"{a.key}/exited"] = a.exited
    duplicated = {a.key: a.duplicates for a in s.audiences if a.duplicates}
    flagged = {
        a.key: {"previous": a.previous_size, "size": a.size, "limit": a.max_size_change}
        for a in s.audiences
        if a.size_change_flagged
    }
    changes = {a.key: round(a.size_change, 4) for a in s.audiences if a.size_change is not None}
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK_UNIQUE,
                passed=not duplicated,
                metadata={"audiences_with_duplicates": dg.MetadataValue.json(duplicated)},
            ),
            dg.AssetCheckResult(
                check_name=CHECK_SIZE,
                passed=not flagged,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "flagged": dg.MetadataValue.json(flagged),
                    "size_changes": dg.MetadataValue.json(changes),
                },
            ),
        ],
    )


COMPUTE_ASSETS = [events, profiles, custom_traits, computed_traits, sql_traits, audiences]
land_events_job = dg.define_asset_job("compute_land_events", selection=dg.AssetSelection.assets(events))
evaluate_job = dg.define_asset_job(
    "compute_evaluate",
    selection=dg.AssetSelection.assets(profiles, custom_traits, computed_traits, sql_traits, audiences),
    description="Resolve profiles, compute traits and evaluate audiences as of the run's activation/as_of tag.",
)


def compute_definitions() -> dg.Definitions:
    """The compute layer's assets, checks and jobs (needs the `workspace` resource: WorkspaceResource)."""
    return dg.Definitions(assets=COMPUTE_ASSETS, jobs=[land_events_job, evaluate_job])
