"""Sensors: keep the connection partitions in step with the workspace file."""

import dagster as dg

from activation_pipeline.defs.partitions import CONNECTIONS, connections_partitions, partition_key
from activation_pipeline.defs.resources import WorkspaceResource


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for each new connection in the workspace file and removes deleted ones.",
)
def connection_partitions_sensor(
    context: dg.SensorEvaluationContext, workspace: WorkspaceResource
) -> dg.SensorResult | dg.SkipReason:
    """Register every configured connection as a dynamic partition; drop the ones no longer configured."""
    wanted = {partition_key(c.connection_id) for c in workspace.workspace.connections}
    existing = set(context.instance.get_dynamic_partitions(CONNECTIONS))
    added, removed = sorted(wanted - existing), sorted(existing - wanted)
    if not added and not removed:
        return dg.SkipReason(f"{len(wanted)} connection partitions already match the workspace")
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if added:
        requests.append(connections_partitions.build_add_request(added))
    if removed:
        requests.append(connections_partitions.build_delete_request(removed))
    context.log.info("connection partitions: %d added, %d removed", len(added), len(removed))
    return dg.SensorResult(dynamic_partitions_requests=requests)
