"""Dagster assets of the sync layer: the exported results, and one sync snapshot asset per destination.

Each destination's snapshot asset is partitioned by that destination's connections (a dynamic partition per
connection, registered from the workspace file), so partition counts stay bounded by the connections.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.config.workspace import Workspace
from activation_pipeline.defs.resources import WorkspaceResource, as_of_from_context
from activation_pipeline.destinations.registry import CATALOGUE
from activation_pipeline.state.store import open_state
from activation_pipeline.sync.compute_view import ResultsView, export_results, results_directory
from activation_pipeline.sync.delta import SyncMode
from activation_pipeline.sync.runner import Progress, sync_destination_of_workspace

if TYPE_CHECKING:  # not exported by dagster 1.13; the type of define_asset_job()
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition as AssetJob,
    )

SYNC_GROUP = "sync"
SYNC_MODE_TAG = "activation/sync_mode"
DESTINATION_TAG = "activation/destination"
RESYNC_WORKSPACE_TAG = "activation/resync_workspace"
RESYNC_REQUEST_TAG = "activation/resync_request"
UPSTREAM = ["audiences", "custom_traits", "computed_traits", "sql_traits"]
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def state_dir(workspace: Workspace) -> Path:
    """The directory beside the compute file where exported results live."""
    return workspace.resolve_path(workspace.compute.path).parent


def sql_levels(workspace: Workspace) -> dict[str, str]:
    """SQL trait key -> level, to read their exported tables."""
    return {t.key: t.level for t in workspace.traits.sql}


@dg.asset(
    deps=UPSTREAM,
    group_name=SYNC_GROUP,
    kinds={"parquet"},
    description="Membership, identities, merges and traits exported as Parquet for the destination syncs.",
)
def sync_inputs(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    """Export the latest evaluation's results so syncs can read them without opening the compute engine."""
    ws = workspace.workspace
    pipeline = ComputePipeline(ws)
    try:
        counts = export_results(pipeline, results_directory(state_dir(ws)), as_of_from_context(context))
    finally:
        pipeline.close()
    return dg.MaterializeResult(metadata={f"{name}_rows": count for name, count in counts.items()})


def destination_partitions(workspace: str, destination_id: str) -> dg.DynamicPartitionsDefinition:
    """The dynamic partitions of one destination of a workspace: its connections (named per workspace, as
    partitions live in the instance that every workspace's code location shares)."""
    return dg.DynamicPartitionsDefinition(name=f"connections_{workspace}_{destination_id}")


def sync_job_name(destination_id: str) -> str:
    """The job that syncs one destination's connections."""
    return f"sync_{destination_id}"


def _guard_resync(context: dg.AssetExecutionContext, workspace: str) -> None:
    """A resync must carry its workspace tag and be the only unfinished resync of its workspace."""
    if context.run.tags.get(RESYNC_WORKSPACE_TAG) != workspace:
        raise dg.Failure(
            f"resyncs are launched with the request_resync job (or with the tag {RESYNC_WORKSPACE_TAG}={workspace}) "
            "so that only one runs at a time per workspace"
        )
    others = [
        r
        for r in context.instance.get_runs(
            filters=dg.RunsFilter(statuses=UNFINISHED, tags={RESYNC_WORKSPACE_TAG: workspace})
        )
        if r.run_id != context.run_id
    ]
    if others:
        raise dg.Failure(
            f"another resync of {workspace} is in progress (run {others[0].run_id}); request one instead"
        )


def build_sync_asset(workspace: Workspace, destination_id: str) -> dg.AssetsDefinition:
    """The sync snapshot asset of one destination: what it holds after the last acknowledged sync."""
    destination = workspace.destination(destination_id)
    spec = CATALOGUE[destination.type]

    @dg.asset(
        key=["sync", destination_id],
        deps=[sync_inputs],
        partitions_def=destination_partitions(workspace.workspace, destination_id),
        group_name=SYNC_GROUP,
        kinds={destination.type.split("_")[0], spec.kind},
        description=f"What {spec.title} ({destination_id}) holds after the last acknowledged sync, per connection.",
    )
    def _sync(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
        ws = workspace.workspace
        by_key = {c.connection_id: c for c in ws.connections if c.destination == destination_id}
        connection_id = context.partition_key
        if connection_id not in by_key:
            raise dg.Failure(
                f"connection {connection_id} is no longer in the workspace file for {destination_id}"
            )
        mode = SyncMode(context.run.tags.get(SYNC_MODE_TAG, SyncMode.INCREMENTAL.value))
        if mode is SyncMode.RESYNC:
            _guard_resync(context, ws.workspace)
        view = ResultsView(results_directory(state_dir(ws)), sql_levels(ws))
        store = open_state(ws.state_location())

        def progress(tracker: Progress) -> None:
            context.log.info(f"{mode.value} sync of {connection_id}: {tracker.describe()}")

        try:
            result = sync_destination_of_workspace(
                store,
                view,
                ws,
                destination_id,
                view.as_of,
                mode=mode,
                connection_ids=[connection_id],
                progress=progress,
            )
        finally:
            store.dispose()
        figures = result.connections.get(connection_id, {})
        context.log.info(f"{mode.value} sync of {connection_id}: {figures}")
        return dg.MaterializeResult(metadata={**result.metadata(), "mode": mode.value})

    return _sync


def build_sync_definitions(
    workspace: Workspace,
) -> "tuple[list[dg.AssetsDefinition], list[AssetJob], list[dg.ScheduleDefinition]]":
    """Per destination: its snapshot asset, its sync job and its schedule (shipped stopped)."""
    assets: list[dg.AssetsDefinition] = [sync_inputs]
    jobs: list[AssetJob] = []
    schedules: list[dg.ScheduleDefinition] = []
    for destination in workspace.destinations:
        asset = build_sync_asset(workspace, destination.id)
        job = dg.define_asset_job(
            sync_job_name(destination.id),
            selection=dg.AssetSelection.assets(asset),
            tags={DESTINATION_TAG: destination.id},
            description=f"Sync connections of {destination.id} (incremental; first sync backfills).",
        )
        assets.append(asset)
        jobs.append(job)
        schedules.append(build_sync_schedule(workspace, destination.id, job))
    return assets, jobs, schedules


def connection_keys(workspace: Workspace, destination_id: str) -> Sequence[str]:
    """The partition keys of a destination's connections."""
    return [c.connection_id for c in workspace.connections if c.destination == destination_id]


def build_sync_schedule(workspace: Workspace, destination_id: str, job: "AssetJob") -> dg.ScheduleDefinition:
    """A schedule running an incremental sync of every connection of a destination on its cadence."""
    destination = workspace.destination(destination_id)
    cron = destination.schedule or CATALOGUE[destination.type].default_schedule

    @dg.schedule(
        name=f"{sync_job_name(destination_id)}_schedule",
        cron_schedule=cron,
        job=job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Incremental sync of {destination_id}'s connections ({cron}); turn on in the UI.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext, workspace: WorkspaceResource) -> list[dg.RunRequest]:
        tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
        # Only connections the partition sensor has registered; a brand-new one is picked up next tick.
        registered = set(
            context.instance.get_dynamic_partitions(
                destination_partitions(workspace.workspace.workspace, destination_id).name or ""
            )
        )
        return [
            dg.RunRequest(
                run_key=f"{tick}:{key}",
                partition_key=key,
                tags={SYNC_MODE_TAG: SyncMode.INCREMENTAL.value, DESTINATION_TAG: destination_id},
            )
            for key in connection_keys(workspace.workspace, destination_id)
            if key in registered
        ]

    return _schedule
