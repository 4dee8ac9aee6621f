"""Resyncs: requested from the Launchpad, launched by a sensor one at a time per workspace."""

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from activation_pipeline.config.workspace import Workspace
from activation_pipeline.defs.resources import WorkspaceResource
from activation_pipeline.defs.sync_assets import (
    DESTINATION_TAG,
    RESYNC_REQUEST_TAG,
    RESYNC_WORKSPACE_TAG,
    SYNC_MODE_TAG,
    UNFINISHED,
    destination_partitions,
    sync_job_name,
)
from activation_pipeline.state.resync_requests import RequestStatus, enqueue, mark, requests
from activation_pipeline.state.store import open_state

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition as AssetJob,
    )

REQUEST_JOB = "request_resync"
_FINISHED_AS = {
    dg.DagsterRunStatus.SUCCESS: RequestStatus.SUCCEEDED,
    dg.DagsterRunStatus.FAILURE: RequestStatus.FAILED,
    dg.DagsterRunStatus.CANCELED: RequestStatus.CANCELED,
}
LAUNCH_GRACE = timedelta(minutes=10)
SENSOR_INTERVAL_ENV = "ACTIVATION_SENSOR_INTERVAL_SECONDS"


def sensor_interval(default: int) -> int:
    """Seconds between sensor ticks: $ACTIVATION_SENSOR_INTERVAL_SECONDS, else the default."""
    return int(os.environ.get(SENSOR_INTERVAL_ENV) or default)


class ResyncRequestConfig(dg.Config):
    """The Launchpad form of `request_resync`."""

    workspace: str = Field(description="workspace name (this code location serves one workspace)")
    connection: str = Field(default="", description="connection id, e.g. audience.high_value_recent.meta_ads")
    audience: str = Field(default="", description="or an audience key: resync all its connections")
    reason: str = Field(description="why the resync is needed (kept with the request)")


def resolve_connections(workspace: Workspace, config: ResyncRequestConfig) -> list[str]:
    """The connection ids a request names, or a ValueError saying what is wrong with it."""
    if config.workspace != workspace.workspace:
        raise ValueError(
            f"this code location serves workspace '{workspace.workspace}', not '{config.workspace}'"
        )
    if bool(config.connection) == bool(config.audience):
        raise ValueError("give either a connection or an audience")
    if not config.reason.strip():
        raise ValueError("give a reason for the resync")
    ids = [c.connection_id for c in workspace.connections]
    if config.connection:
        if config.connection not in ids:
            raise ValueError(f"unknown connection '{config.connection}'; connections: {', '.join(ids)}")
        return [config.connection]
    chosen = [c.connection_id for c in workspace.connections if c.source == f"audience:{config.audience}"]
    if not chosen:
        raise ValueError(f"audience '{config.audience}' has no connections")
    return chosen


@dg.op(description="Record a resync request; the resync sensor launches it when the workspace is free.")
def record_resync_request(
    context: dg.OpExecutionContext, config: ResyncRequestConfig, workspace: WorkspaceResource
) -> None:
    """Validate the request and add one pending request per connection to the queue."""
    ws = workspace.workspace
    connection_ids = resolve_connections(ws, config)
    store = open_state(ws.state_location())
    try:
        created = enqueue(
            store, ws.workspace, connection_ids, config.reason, requested_by=f"run {context.run_id}"
        )
    finally:
        store.dispose()
    for request in created:
        context.log.info("resync of %s queued as request %s", request.connection_id, request.request_id)


@dg.job(
    name=REQUEST_JOB, description="Ask for a resync of a connection (or of every connection of an audience)."
)
def request_resync() -> None:
    """Record a resync request."""
    record_resync_request()


def busy(instance: dg.DagsterInstance, workspace: str) -> bool:
    """Whether a resync run of the workspace is unfinished (queued, starting, running or cancelling)."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=UNFINISHED, tags={RESYNC_WORKSPACE_TAG: workspace}), limit=1
    )
    return bool(runs)


def build_resync_sensor(jobs: "Sequence[AssetJob]") -> dg.SensorDefinition:
    """The sensor launching resyncs (as runs of each destination's sync job) one per workspace at a time."""

    @dg.sensor(
        jobs=list(jobs),
        minimum_interval_seconds=sensor_interval(30),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches pending resync requests oldest first, at most one resync in progress per workspace.",
    )
    def resync_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
        """Settle finished requests, then launch the oldest pending one if the workspace has no resync running."""
        return evaluate_resync_queue(context, workspace.workspace)

    return resync_sensor


def evaluate_resync_queue(context: dg.SensorEvaluationContext, ws: Workspace) -> dg.SensorResult:
    """One tick of the resync queue: settle launched requests, launch the next if the workspace is free."""
    store = open_state(ws.state_location())
    try:
        for request in requests(store, frozenset({RequestStatus.LAUNCHED})):
            runs = context.instance.get_runs(
                filters=dg.RunsFilter(tags={RESYNC_REQUEST_TAG: request.request_id})
            )
            finished = [r for r in runs if r.status in _FINISHED_AS]
            if finished:
                mark(store, request.request_id, _FINISHED_AS[finished[0].status], run_id=finished[0].run_id)
            elif not runs and datetime.now(UTC) - request.requested_at > LAUNCH_GRACE:
                mark(
                    store,
                    request.request_id,
                    RequestStatus.FAILED,
                    detail="no run was created for the request",
                )
        if busy(context.instance, ws.workspace) or requests(store, frozenset({RequestStatus.LAUNCHED})):
            return dg.SensorResult(skip_reason=f"waiting: a resync of {ws.workspace} is in progress")
        pending = [
            r for r in requests(store, frozenset({RequestStatus.PENDING})) if r.workspace == ws.workspace
        ]
        if not pending:
            return dg.SensorResult(skip_reason="no pending resync requests")
        request = pending[0]
        known = {c.connection_id: c.destination for c in ws.connections}
        if request.connection_id not in known:
            mark(
                store,
                request.request_id,
                RequestStatus.FAILED,
                detail="the connection is no longer configured",
            )
            return dg.SensorResult(
                skip_reason=f"dropped request for removed connection {request.connection_id}"
            )
        destination = known[request.connection_id]
        mark(store, request.request_id, RequestStatus.LAUNCHED)
    finally:
        store.dispose()
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=request.request_id,
                job_name=sync_job_name(destination),
                partition_key=request.connection_id,
                tags={
                    SYNC_MODE_TAG: "resync",
                    DESTINATION_TAG: destination,
                    RESYNC_WORKSPACE_TAG: ws.workspace,
                    RESYNC_REQUEST_TAG: request.request_id,
                },
            )
        ],
        dynamic_partitions_requests=[
            destination_partitions(ws.workspace, destination).build_add_request([request.connection_id])
        ],
    )
