"""Sensors: keep each destination's connection partitions in step with the workspace file."""

import dagster as dg

from activation_pipeline.defs.resources import WorkspaceResource
from activation_pipeline.defs.resync import sensor_interval
from activation_pipeline.defs.sync_assets import connection_keys, destination_partitions


@dg.sensor(
    minimum_interval_seconds=sensor_interval(60),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for each new connection in the workspace file and removes deleted ones.",
)
def connection_partitions_sensor(
    context: dg.SensorEvaluationContext, workspace: WorkspaceResource
) -> dg.SensorResult | dg.SkipReason:
    """Register every configured connection as a partition of its destination; drop those no longer there."""
    ws = workspace.workspace
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    added = removed = 0
    for destination in ws.destinations:
        partitions = destination_partitions(ws.workspace, destination.id)
        wanted = set(connection_keys(ws, destination.id))
        existing = set(context.instance.get_dynamic_partitions(partitions.name or ""))
        if wanted - existing:
            requests.append(partitions.build_add_request(sorted(wanted - existing)))
            added += len(wanted - existing)
        if existing - wanted:
            requests.append(partitions.build_delete_request(sorted(existing - wanted)))
            removed += len(existing - wanted)
    if not requests:
        return dg.SkipReason(f"{len(ws.connections)} connection partitions already match the workspace")
    context.log.info("connection partitions: %d added, %d removed", added, removed)
    return dg.SensorResult(dynamic_partitions_requests=requests)
