"""Keep each destination's connection partitions in step with the workspace file."""

import os

import dagster as dg

from activation_pipeline.config import load_workspace
from activation_pipeline.orchestration.scope import Scope
from activation_pipeline.orchestration.sync_assets import connection_keys

SENSOR_INTERVAL_ENV = "ACTIVATION_SENSOR_INTERVAL_SECONDS"


def sensor_interval(default: int) -> int:
    """Seconds between sensor ticks: $ACTIVATION_SENSOR_INTERVAL_SECONDS, else the default."""
    return int(os.environ.get(SENSOR_INTERVAL_ENV) or default)


def build_partitions_sensor(scope: Scope, path: str) -> dg.SensorDefinition:
    """The sensor registering each configured connection as a partition of its destination."""

    @dg.sensor(
        name=scope.name("connection_partitions_sensor"),
        minimum_interval_seconds=sensor_interval(60),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds a partition for each new connection in the workspace file and removes deleted ones.",
    )
    def connection_partitions_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        """Register every configured connection as a partition of its destination; drop those no longer there."""
        ws = load_workspace(path)
        requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        added = removed = 0
        for destination in ws.destinations:
            partitions = scope.partitions(destination.id)
            wanted = set(connection_keys(ws, destination.id))
            existing = set(context.instance.get_dynamic_partitions(partitions.name or ""))
            if wanted - existing:
                requests.append(partitions.build_add_request(sorted(wanted - existing)))
                added += len(wanted - existing)
            if existing - wanted:
                requests.append(partitions.build_delete_request(sorted(existing - wanted)))
                removed += len(existing - wanted)
        if not requests:
            return dg.SkipReason(
                f"{len(ws.delivery_connections())} connection partitions already match the workspace"
            )
        context.log.info("connection partitions: %d added, %d removed", added, removed)
        return dg.SensorResult(dynamic_partitions_requests=requests)

    return connection_partitions_sensor
