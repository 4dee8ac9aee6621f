"""One workspace's sync assets: the exported results, and one sync asset per destination depending on the
audiences and traits it sends; each destination's sync job and schedule.

A destination's sync asset is partitioned by its connections (a dynamic partition per connection, registered
from the workspace file), so partition counts stay bounded by the connections.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from activation_pipeline.config import Workspace, load_workspace
from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.registry import CATALOGUE
from activation_pipeline.orchestration.compute_assets import audience_key, trait_key
from activation_pipeline.orchestration.predictive_assets import score_keys
from activation_pipeline.orchestration.resources import ComputeResource, DeliveryResource, StateStoreResource
from activation_pipeline.orchestration.runs import as_of_from_context, workspace_for_run
from activation_pipeline.orchestration.scope import (
    DESTINATION_TAG,
    RESYNC_WORKSPACE_TAG,
    SYNC,
    SYNC_MODE_TAG,
    WORKSPACE_TAG,
    Scope,
)
from activation_pipeline.orchestration.sync_metadata import (
    CHECK_DELIVERED,
    UNDELIVERED_LIMIT,
    delivery_check,
    sync_metadata,
)
from activation_pipeline.sync.delta import SyncMode
from activation_pipeline.sync.runner import Progress, sync_destination_of_workspace

if TYPE_CHECKING:  # not exported by dagster 1.13; the type of define_asset_job()
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition as AssetJob,
    )

UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def sync_job_name(scope: Scope, destination_id: str) -> str:
    """The job that syncs one destination's connections, e.g. `acme_shop__sync_meta_ads`."""
    return scope.name(f"sync_{destination_id}")


def connection_keys(workspace: Workspace, destination_id: str) -> Sequence[str]:
    """The partition keys of a destination's connections."""
    return [c.connection_id for c in workspace.delivery_connections() if c.destination == destination_id]


def _trait_asset(scope: Scope, workspace: Workspace, trait: str) -> dg.AssetKey:
    """The asset holding a trait: its own for a computed trait, else the SQL or custom traits asset."""
    if any(t.key == trait for t in workspace.traits.computed):
        return trait_key(scope, trait)
    if any(trait in sql.trait_keys for sql in workspace.traits.sql):
        return scope.key("sql_traits")
    if trait in (predictive := score_keys(scope, workspace)):
        return predictive[trait]
    return scope.key("custom_traits")


def sent_assets(scope: Scope, workspace: Workspace, connection: Connection) -> set[dg.AssetKey]:
    """The audience or trait a connection sends, and the traits it enriches its messages with."""
    if connection.source_kind == "journey":
        sent = {scope.key("journeys", connection.source_key.split(".", 1)[0])}
    elif connection.source_kind == "audience":
        sent = {audience_key(scope, connection.source_key)}
    else:
        sent = {_trait_asset(scope, workspace, connection.source_key)}
    return sent | {_trait_asset(scope, workspace, m.trait.split(".")[0]) for m in connection.trait_enrichment}


def _guard_resync(context: dg.AssetExecutionContext, workspace: str) -> None:
    """A resync must carry its workspace tag and be the only unfinished resync of its workspace."""
    if context.run.tags.get(RESYNC_WORKSPACE_TAG) != workspace:
        raise dg.Failure(
            f"resyncs are launched with the workspace's request_resync job (or with the tag {RESYNC_WORKSPACE_TAG}={workspace}) "
            "so that only one runs at a time per workspace"
        )
    others = [
        r
        for r in context.instance.get_runs(
            filters=dg.RunsFilter(statuses=UNFINISHED, tags={RESYNC_WORKSPACE_TAG: workspace})
        )
        if r.run_id != context.run.run_id
    ]
    if others:
        raise dg.Failure(
            f"another resync of {workspace} is in progress (run {others[0].run_id}); request one instead"
        )


def build_sync_inputs(
    scope: Scope, workspace: Workspace, path: str, upstream: Sequence[dg.AssetKey]
) -> dg.AssetsDefinition:
    """The asset exporting the latest evaluation for the syncs."""

    @dg.asset(
        key=scope.key("sync_inputs"),
        deps=list(upstream),
        group_name=scope.group(SYNC),
        kinds={"parquet"},
        description="Membership, identities, merges and traits exported as Parquet for the destination syncs.",
    )
    def sync_inputs(
        context: dg.AssetExecutionContext, state: StateStoreResource, compute: ComputeResource
    ) -> dg.MaterializeResult:
        """Export the latest evaluation's results so syncs can read them without opening the compute engine."""
        counts = compute.export(workspace_for_run(context, path, state), as_of_from_context(context))
        return dg.MaterializeResult(metadata={f"{name}_rows": count for name, count in counts.items()})

    return sync_inputs


def build_sync_asset(
    scope: Scope, workspace: Workspace, path: str, destination_id: str
) -> dg.AssetsDefinition:
    """The sync asset of one destination: what it holds after the last acknowledged sync, per connection."""
    destination = workspace.destination(destination_id)
    spec = CATALOGUE[destination.type]
    sends = set().union(
        *(
            sent_assets(scope, workspace, c)
            for c in workspace.delivery_connections()
            if c.destination == destination_id
        )
    )

    @dg.asset(
        key=scope.key("sync", destination_id),
        deps=[scope.key("workspace_config"), scope.key("sync_inputs"), *sorted(sends, key=str)],
        partitions_def=scope.partitions(destination_id),
        group_name=scope.group(SYNC),
        kinds={destination.type.split("_")[0], spec.kind},
        description=f"What {spec.title} ({destination_id}) holds after the last acknowledged sync, per connection.",
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_DELIVERED,
                asset=scope.key("sync", destination_id),
                description=f"At most {UNDELIVERED_LIMIT:.0%} of a sync's records failed or wait for the next run",
            )
        ],
    )
    def _sync(
        context: dg.AssetExecutionContext,
        state: StateStoreResource,
        compute: ComputeResource,
        delivery: DeliveryResource,
    ) -> dg.MaterializeResult:
        """Sync one connection (the partition) of the destination: incrementally, or as a resync."""
        ws = delivery.workspace(workspace_for_run(context, path, state))
        connection_id = context.partition_key
        if connection_id not in connection_keys(ws, destination_id):
            raise dg.Failure(
                f"connection {connection_id} is no longer in the workspace file for {destination_id}"
            )
        mode = SyncMode(context.run.tags.get(SYNC_MODE_TAG, SyncMode.INCREMENTAL.value))
        if mode is SyncMode.RESYNC:
            _guard_resync(context, ws.workspace)
        view = compute.results(ws)

        def progress(tracker: Progress) -> None:
            context.log.info(f"{mode.value} of {connection_id}: {tracker.describe()}")

        result = sync_destination_of_workspace(
            state.open(ws),
            view,
            ws,
            destination_id,
            view.as_of,
            mode=mode,
            connection_ids=[connection_id],
            progress=progress,
            retry=delivery.retry_policy(),
            sleep=delivery.sleep,
            limiter_factory=delivery.limiter,
        )
        figures = result.metadata()
        # Only the sandbox's fake servers are given placeholder secrets: this says where the records went.
        target = "sandbox" if delivery.placeholder_secrets else "destination"
        return dg.MaterializeResult(
            metadata={**sync_metadata(figures, mode.value), "sent_to": target},
            check_results=[delivery_check(scope.key("sync", destination_id), figures)],
        )

    return _sync


def build_sync_schedule(
    scope: Scope, path: str, destination_id: str, cron: str, job: "AssetJob"
) -> dg.ScheduleDefinition:
    """A schedule running an incremental sync of every connection of a destination on its cadence."""
    partitions = scope.partitions(destination_id)

    @dg.schedule(
        name=f"{sync_job_name(scope, destination_id)}_schedule",
        cron_schedule=cron,
        job=job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Incremental sync of {destination_id}'s connections ({cron}); turn on in the UI.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        """An incremental sync of each registered connection of the destination."""
        tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
        # Only connections the partition sensor has registered; a brand-new one is picked up next tick.
        registered = set(context.instance.get_dynamic_partitions(partitions.name or ""))
        return [
            dg.RunRequest(
                run_key=f"{tick}:{key}",
                partition_key=key,
                tags={SYNC_MODE_TAG: SyncMode.INCREMENTAL.value, DESTINATION_TAG: destination_id},
            )
            for key in connection_keys(load_workspace(path), destination_id)
            if key in registered
        ]

    return _schedule


def build_sync_definitions(
    scope: Scope, workspace: Workspace, path: str, upstream: Sequence[dg.AssetKey]
) -> "tuple[list[dg.AssetsDefinition], list[AssetJob], list[dg.ScheduleDefinition]]":
    """The exported results, and per destination its sync asset, job and schedule (shipped stopped)."""
    assets = [build_sync_inputs(scope, workspace, path, upstream)]
    jobs: list[AssetJob] = []
    schedules: list[dg.ScheduleDefinition] = []
    for destination in workspace.destinations:
        asset = build_sync_asset(scope, workspace, path, destination.id)
        job = dg.define_asset_job(
            sync_job_name(scope, destination.id),
            selection=dg.AssetSelection.assets(asset),
            tags={DESTINATION_TAG: destination.id, WORKSPACE_TAG: workspace.workspace},
            description=f"Sync connections of {destination.id} (incremental; first sync backfills).",
        )
        cron = destination.schedule or CATALOGUE[destination.type].default_schedule
        assets.append(asset)
        jobs.append(job)
        schedules.append(build_sync_schedule(scope, path, destination.id, cron, job))
    return assets, jobs, schedules
