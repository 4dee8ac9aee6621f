"""One workspace's compute assets: events -> profiles -> traits (one asset per computed trait) -> audiences
(one asset per audience, with its checks).

Every asset is a thin call into `activation_pipeline.compute`; the evaluation time comes from the run tag
`activation/as_of`. Metadata holds counts only, never identifiers or traits.
"""

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TypeVar

import dagster as dg

from activation_pipeline.compute.audiences import AudienceResult
from activation_pipeline.compute.identity import IdentitySummary
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.config import Workspace
from activation_pipeline.orchestration.predictive_assets import build_predictive_assets, score_keys
from activation_pipeline.orchestration.resources import ComputeResource, StateStoreResource
from activation_pipeline.orchestration.runs import (
    as_of_from_context,
    full_rebuild_requested,
    workspace_for_run,
)
from activation_pipeline.orchestration.scope import AS_OF_TAG, AUDIENCES, IDENTITY, INGEST, TRAITS, Scope

KINDS = {"sql", "duckdb"}
CHECK_UNIQUE = "members_unique"
CHECK_SIZE = "size_change"
T = TypeVar("T")


def audience_key(scope: Scope, key: str) -> dg.AssetKey:
    """The asset of one audience: `<workspace>/audiences/<key>`."""
    return scope.key("audiences", key)


def trait_key(scope: Scope, key: str) -> dg.AssetKey:
    """The asset of one computed trait: `<workspace>/traits/<key>`."""
    return scope.key("traits", key)


def _audience_checks(scope: Scope, workspace: Workspace) -> list[dg.AssetCheckSpec]:
    checks = []
    for audience in workspace.audiences:
        key = audience_key(scope, audience.key)
        checks.append(
            dg.AssetCheckSpec(CHECK_UNIQUE, asset=key, blocking=True, description="No profile twice.")
        )
        checks.append(
            dg.AssetCheckSpec(
                CHECK_SIZE,
                asset=key,
                description="Warns when the size moved more than the audience's max_size_change since the "
                "last run.",
            )
        )
    return checks


def _size_change_text(result: AudienceResult) -> str:
    """`cart_abandoners: 109 -> 0 (-100%, limit 50%)`, shown on the check without opening its metadata."""
    if result.previous_size is None:
        return f"{result.key}: first evaluation, size {result.size:,}"
    # size_change is the magnitude (what the limit is checked against); the text says which way it moved.
    moved = (result.size - result.previous_size) / result.previous_size if result.previous_size else None
    change = f"{moved:+.0%}" if moved is not None else "n/a"
    return f"{result.key}: {result.previous_size:,} -> {result.size:,} ({change}, limit {result.max_size_change:.0%})"


def _audience_result(scope: Scope, result: AudienceResult, as_of: str, mode: str) -> dg.MaterializeResult:
    """One audience's materialisation: size, entered and exited (plotted over runs) and its two checks."""
    key = audience_key(scope, result.key)
    change = result.size_change
    return dg.MaterializeResult(
        asset_key=key,
        metadata={
            "as_of": as_of,
            "mode": mode,
            "dagster/row_count": result.size,
            "size": result.size,
            "entered": result.entered,
            "exited": result.exited,
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=key,
                check_name=CHECK_UNIQUE,
                passed=not result.duplicates,
                metadata={"duplicates": result.duplicates},
            ),
            dg.AssetCheckResult(
                asset_key=key,
                check_name=CHECK_SIZE,
                passed=not result.size_change_flagged,
                severity=dg.AssetCheckSeverity.WARN,
                description=_size_change_text(result),
                metadata={
                    "previous_size": result.previous_size if result.previous_size is not None else -1,
                    "size": result.size,
                    "size_change": round(change, 4) if change is not None else 0.0,
                    "limit": result.max_size_change,
                },
            ),
        ],
    )


def _run_stage(
    context: dg.AssetExecutionContext,
    path: str,
    state: StateStoreResource,
    compute: ComputeResource,
    stage: Callable[[ComputePipeline, datetime], T],
    announce: bool = True,
) -> tuple[datetime, T]:
    """Run one compute stage as of the run's time, on the workspace as the run pinned it."""
    as_of = as_of_from_context(context)
    if not announce:
        pass
    elif context.run.tags.get(AS_OF_TAG):
        context.log.info(f"evaluating as of {as_of.isoformat()} (the run's {AS_OF_TAG} tag)")
    else:
        context.log.info(
            f"evaluating as of {as_of.isoformat()}, when the run was created (no {AS_OF_TAG} tag; add one to "
            "evaluate as of another time, e.g. when the events end)"
        )
    with compute.pipeline(workspace_for_run(context, path, state)) as pipeline:
        return as_of, stage(pipeline, as_of)


def build_compute_assets(scope: Scope, workspace: Workspace, path: str) -> list[dg.AssetsDefinition]:
    """The compute assets of one workspace (its file at `path`), keyed under its name."""
    config_key = scope.key("workspace_config")
    events_key, profiles_key = scope.key("events"), scope.key("profiles")
    custom_key, sql_key = scope.key("custom_traits"), scope.key("sql_traits")

    @dg.asset(
        key=events_key,
        deps=[config_key],
        group_name=scope.group(INGEST),
        kinds=KINDS,
        description="Segment-spec messages landed in the compute engine: every file (or warehouse row) not "
        "landed before, whatever dates its events carry; unusable ones quarantined with their reason.",
    )
    def events(
        context: dg.AssetExecutionContext, state: StateStoreResource, compute: ComputeResource
    ) -> dg.MaterializeResult:
        """Land everything new in the events source in one run (new, appended and changed files)."""
        _, s = _run_stage(context, path, state, compute, lambda pipeline, _: pipeline.land(), announce=False)
        context.log.info(
            f"{s.events} events landed from {s.new_sources} new, {s.appended_sources} appended and "
            f"{s.changed_sources} changed sources ({s.unchanged_sources} unchanged); {s.quarantined} "
            f"quarantined, {s.duplicates} duplicates, {s.seconds:.1f} s"
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
        key=profiles_key,
        deps=[config_key, events_key],
        group_name=scope.group(IDENTITY),
        kinds=KINDS,
        description="Identity graph: identifiers seen together merged into profiles, within limits.",
    )
    def profiles(
        context: dg.AssetExecutionContext, state: StateStoreResource, compute: ComputeResource
    ) -> dg.MaterializeResult:
        """Resolve identities of all landed events up to the run's as-of time."""

        def resolve(pipeline: ComputePipeline, as_of: datetime) -> IdentitySummary:
            if full_rebuild_requested(context):
                pipeline.force_full()
            return pipeline.resolve_identities(as_of)

        as_of, s = _run_stage(context, path, state, compute, resolve)
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
        key=custom_key,
        deps=[config_key, profiles_key],
        group_name=scope.group(TRAITS),
        kinds=KINDS,
        description="Custom traits (latest identify value) and account traits (latest group value).",
    )
    def custom_traits(
        context: dg.AssetExecutionContext, state: StateStoreResource, compute: ComputeResource
    ) -> dg.MaterializeResult:
        """Compute custom user traits and account traits as of the run's time."""
        as_of, s = _run_stage(context, path, state, compute, ComputePipeline.custom_traits)
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

    computed_keys = {t.key: trait_key(scope, t.key) for t in workspace.traits.computed}

    @dg.multi_asset(
        name=f"{scope.ident}__computed_traits",
        specs=[
            dg.AssetSpec(
                key,
                deps=[config_key, profiles_key],
                group_name=scope.group(TRAITS),
                kinds=KINDS,
                description=f"Computed trait `{trait}` of every profile (or account) as of the run's time.",
            )
            for trait, key in computed_keys.items()
        ],
    )
    def computed_traits(
        context: dg.AssetExecutionContext, state: StateStoreResource, compute: ComputeResource
    ) -> Iterator[dg.MaterializeResult]:
        """Compute every computed trait as of the run's time (incrementally when possible)."""
        as_of, s = _run_stage(context, path, state, compute, ComputePipeline.computed_traits)
        for key in computed_keys.values():
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={"as_of": as_of.isoformat(), "mode": s.mode, "recomputed_profiles": s.recomputed},
            )

    @dg.asset(
        key=sql_key,
        deps=[config_key, profiles_key],
        group_name=scope.group(TRAITS),
        kinds=KINDS,
        description="SQL traits: the workspace's queries on its warehouse, rows mapped to profiles.",
    )
    def sql_traits(
        context: dg.AssetExecutionContext, state: StateStoreResource, compute: ComputeResource
    ) -> dg.MaterializeResult:
        """Run every SQL trait query and map its rows to profiles."""
        as_of, s = _run_stage(context, path, state, compute, ComputePipeline.sql_traits)
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

    predictive = build_predictive_assets(scope, workspace, path)
    trait_assets = [
        custom_key,
        *computed_keys.values(),
        sql_key,
        *dict.fromkeys(score_keys(scope, workspace).values()),
    ]

    @dg.multi_asset(
        name=f"{scope.ident}__audiences",
        specs=[
            dg.AssetSpec(
                audience_key(scope, audience.key),
                deps=[config_key, *trait_assets],
                group_name=scope.group(AUDIENCES),
                kinds=KINDS,
                description=audience.description
                or f"Members of audience `{audience.key}` as of the run's time, with who entered and exited.",
            )
            for audience in workspace.audiences
        ],
        check_specs=_audience_checks(scope, workspace),
    )
    def audiences(
        context: dg.AssetExecutionContext, state: StateStoreResource, compute: ComputeResource
    ) -> Iterator[dg.MaterializeResult]:
        """Evaluate every audience; each gets its size, entered and exited, and its checks."""
        if not computed_keys:  # no computed-trait asset ran the (empty) stage audiences build on
            _run_stage(context, path, state, compute, ComputePipeline.computed_traits)
        as_of, s = _run_stage(context, path, state, compute, ComputePipeline.audiences)
        results = {r.key: r for r in s.audiences}
        for audience in workspace.audiences:
            result = results.get(audience.key) or AudienceResult(
                key=audience.key,
                level=audience.level,
                size=0,
                previous_size=None,
                entered=0,
                exited=0,
                duplicates=0,
                max_size_change=audience.max_size_change,
            )
            yield _audience_result(scope, result, as_of.isoformat(), s.mode)

    built = [events, profiles, custom_traits, sql_traits, *predictive]
    if computed_keys:
        built.append(computed_traits)
    if workspace.audiences:
        built.append(audiences)
    return built
