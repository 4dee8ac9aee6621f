"""Resyncs: requested from the Launchpad, launched by a sensor one at a time per workspace."""

import enum
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from activation_pipeline.config import Workspace, load_workspace
from activation_pipeline.orchestration.resources import StateStoreResource
from activation_pipeline.orchestration.runs import workspace_for_run
from activation_pipeline.orchestration.scope import (
    DESTINATION_TAG,
    RESYNC_REQUEST_TAG,
    RESYNC_WORKSPACE_TAG,
    SYNC_MODE_TAG,
    Scope,
)
from activation_pipeline.orchestration.sensors import sensor_interval
from activation_pipeline.orchestration.sync_assets import UNFINISHED, sync_job_name
from activation_pipeline.state.resync_requests import RequestStatus, enqueue, mark, requests

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


def request_config_class(workspace: Workspace) -> type[dg.Config]:
    """The Launchpad form of a workspace's `request_resync` job: its connections and audiences as choices."""
    ident = Scope(workspace.workspace).ident
    connection_ids = [c.connection_id for c in workspace.delivery_connections()]
    audiences = sorted(
        {
            c.source.removeprefix("audience:")
            for c in workspace.delivery_connections()
            if c.source.startswith("audience:")
        }
    )
    # Enums become Dagster enum types: the Launchpad offers their values instead of free text.
    connection_choice = enum.Enum(f"{ident}__connection", {c: c for c in connection_ids}, type=str)  # type: ignore[misc]
    audience_choice = enum.Enum(f"{ident}__audience", {a: a for a in audiences or ["none"]}, type=str)  # type: ignore[misc]

    class ResyncRequestConfig(dg.Config):
        """Which connection (or every connection of an audience) to resync, and why."""

        connection: connection_choice | None = Field(
            default=None,
            description=f"a connection of {workspace.workspace}, e.g. {connection_ids[0] if connection_ids else ''}",
        )
        audience: audience_choice | None = Field(
            default=None, description="or an audience: resync every connection it is sent through"
        )
        reason: str = Field(description="why the resync is needed (kept with the request)")

    ResyncRequestConfig.__name__ = f"{ident}__ResyncRequestConfig"
    return ResyncRequestConfig


def _choice(value: object) -> str:
    """The text of an enum choice (or of a plain value), "" for none."""
    if value is None:
        return ""
    return str(value.value if isinstance(value, enum.Enum) else value)


def resolve_connections(workspace: Workspace, connection: str, audience: str, reason: str) -> list[str]:
    """The connection ids a request names, or a ValueError saying what is wrong with it."""
    if bool(connection) == bool(audience):
        raise ValueError("give either a connection or an audience")
    if not reason.strip():
        raise ValueError("give a reason for the resync")
    ids = [c.connection_id for c in workspace.delivery_connections()]
    if connection:
        if connection not in ids:
            raise ValueError(
                f"unknown connection '{connection}' (reload the code location after editing the workspace file); "
                f"connections: {', '.join(ids)}"
            )
        return [connection]
    chosen = [c.connection_id for c in workspace.connections if c.source == f"audience:{audience}"]
    if not chosen:
        raise ValueError(f"audience '{audience}' has no connections")
    return chosen


def build_request_job(scope: Scope, path: str) -> dg.JobDefinition:
    """The job recording a resync request of the workspace (from the Launchpad)."""
    request_config = request_config_class(load_workspace(path))

    @dg.op(
        name=scope.name("record_resync_request"),
        description="Record a resync request; the resync sensor launches it when the workspace is free.",
    )
    def record_resync_request(
        context: dg.OpExecutionContext,
        config: request_config,  # type: ignore[valid-type]
        state: StateStoreResource,
    ) -> None:
        """Validate the request and add one pending request per connection to the queue."""
        ws = workspace_for_run(context, path, state)
        form: dict[str, object] = dict(config)  # the fields of this workspace's form class
        reason = str(form["reason"])
        chosen = resolve_connections(ws, _choice(form["connection"]), _choice(form["audience"]), reason)
        created = enqueue(
            state.open(ws),
            ws.workspace,
            chosen,
            reason,
            requested_by=f"run {context.run.run_id}",
        )
        for request in created:
            context.log.info(
                "resync of %s queued as request %s; %s launches it when no other resync of %s is in progress",
                request.connection_id,
                request.request_id,
                scope.name("resync_sensor"),
                ws.workspace,
            )

    @dg.job(
        name=scope.name(REQUEST_JOB),
        description=f"Ask for a resync of a connection of {scope.workspace} (or of every connection of an "
        "audience).",
    )
    def request_resync() -> None:
        """Record a resync request."""
        record_resync_request()

    return request_resync


def busy(instance: dg.DagsterInstance, workspace: str) -> bool:
    """Whether a resync run of the workspace is unfinished (queued, starting, running or cancelling)."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=UNFINISHED, tags={RESYNC_WORKSPACE_TAG: workspace}), limit=1
    )
    return bool(runs)


def build_resync_sensor(scope: Scope, path: str, jobs: "Sequence[AssetJob]") -> dg.SensorDefinition:
    """The sensor launching the workspace's resyncs (as runs of each destination's sync job) one at a time."""

    @dg.sensor(
        name=scope.name("resync_sensor"),
        jobs=list(jobs),
        minimum_interval_seconds=sensor_interval(30),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches pending resync requests oldest first, at most one resync in progress per workspace.",
    )
    def resync_sensor(context: dg.SensorEvaluationContext, state: StateStoreResource) -> dg.SensorResult:
        """Settle finished requests, then launch the oldest pending one if the workspace has no resync running."""
        return evaluate_resync_queue(context, scope, load_workspace(path), state)

    return resync_sensor


def evaluate_resync_queue(
    context: dg.SensorEvaluationContext, scope: Scope, ws: Workspace, state: StateStoreResource
) -> dg.SensorResult:
    """One tick of the resync queue: settle launched requests, launch the next if the workspace is free."""
    store = state.open(ws)
    for request in requests(store, frozenset({RequestStatus.LAUNCHED})):
        runs = context.instance.get_runs(filters=dg.RunsFilter(tags={RESYNC_REQUEST_TAG: request.request_id}))
        finished = [r for r in runs if r.status in _FINISHED_AS]
        if finished:
            mark(store, request.request_id, _FINISHED_AS[finished[0].status], run_id=finished[0].run_id)
        elif not runs and datetime.now(UTC) - request.requested_at > LAUNCH_GRACE:
            mark(store, request.request_id, RequestStatus.FAILED, detail="no run was created for the request")
    if busy(context.instance, ws.workspace) or requests(store, frozenset({RequestStatus.LAUNCHED})):
        return dg.SensorResult(skip_reason=f"waiting: a resync of {ws.workspace} is in progress")
    pending = [r for r in requests(store, frozenset({RequestStatus.PENDING})) if r.workspace == ws.workspace]
    if not pending:
        return dg.SensorResult(skip_reason="no pending resync requests")
    request = pending[0]
    known = {c.connection_id: c.destination for c in ws.delivery_connections()}
    if request.connection_id not in known:
        mark(store, request.request_id, RequestStatus.FAILED, detail="the connection is no longer configured")
        return dg.SensorResult(skip_reason=f"dropped request for removed connection {request.connection_id}")
    destination = known[request.connection_id]
    mark(store, request.request_id, RequestStatus.LAUNCHED)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=request.request_id,
                job_name=sync_job_name(scope, destination),
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
            scope.partitions(destination).build_add_request([request.connection_id])
        ],
    )
