"""The Profile API's serving copy as an asset: published after traits and audiences, with its size and time."""

import time
from collections.abc import Sequence

import dagster as dg

from activation_pipeline.compute.pipeline import naive_utc
from activation_pipeline.orchestration.resources import ComputeResource, StateStoreResource
from activation_pipeline.orchestration.runs import as_of_from_context, workspace_for_run
from activation_pipeline.orchestration.scope import Scope
from activation_pipeline.serving.publish import publish_serving_copy

SERVING = "serving"


def serving_copy_key(scope: Scope) -> dg.AssetKey:
    """The serving copy's asset: `<workspace>/serving_copy`."""
    return scope.key("serving_copy")


def build_serving_asset(scope: Scope, path: str, upstream: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """The asset publishing the serving copy of the run's evaluation (downstream of `upstream`)."""

    @dg.asset(
        key=serving_copy_key(scope),
        deps=list(upstream),
        group_name=scope.group(SERVING),
        kinds={"duckdb", "sql"},
        description="The Profile API's serving copy of the evaluation: one indexed document per profile, "
        "lookup by every identifier, accounts and recent events; written as a new version (after an incremental "
        "evaluation, the previous one with the recomputed profiles replaced), then switched to atomically.",
    )
    def serving_copy(
        context: dg.AssetExecutionContext, state: StateStoreResource, compute: ComputeResource
    ) -> dg.MaterializeResult:
        """Publish the serving copy of the evaluation as of the run's time."""
        as_of = as_of_from_context(context)
        started = time.perf_counter()
        with compute.pipeline(workspace_for_run(context, path, state)) as pipeline:
            published = publish_serving_copy(pipeline.engine, pipeline.workspace, naive_utc(as_of))
        return dg.MaterializeResult(
            metadata={
                "as_of": as_of.isoformat(),
                "published_at": published.published_at.isoformat() + "Z",
                "version": published.version,
                "mode": published.mode,
                "dagster/row_count": published.profiles,
                "profiles": published.profiles,
                "accounts": published.accounts,
                "lookup_keys": published.identifiers,
                "events": published.events,
                "seconds": round(time.perf_counter() - started, 3),
            }
        )

    return serving_copy
