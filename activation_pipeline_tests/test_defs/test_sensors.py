"""The connection-partition sensor follows the workspace file, on a real Dagster instance."""

from pathlib import Path

import dagster as dg
import yaml

from activation_pipeline.defs.partitions import CONNECTIONS, partition_key
from activation_pipeline.defs.resources import SAMPLE_WORKSPACE, WorkspaceResource
from activation_pipeline.defs.sensors import connection_partitions_sensor


def _evaluate(instance: dg.DagsterInstance, path: Path) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(
        instance=instance, resources={"workspace": WorkspaceResource(path=str(path))}
    )
    result = connection_partitions_sensor(context)
    assert isinstance(result, dg.SensorResult | dg.SkipReason)
    return result


def _apply(instance: dg.DagsterInstance, result: dg.SensorResult | dg.SkipReason) -> None:
    # build_sensor_context does not apply partition requests; the daemon would.
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(CONNECTIONS, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(CONNECTIONS, key)


def test_partitions_follow_the_config(tmp_path: Path) -> None:
    """New connections are added, removed ones deleted, and an unchanged file skips."""
    config = yaml.safe_load(SAMPLE_WORKSPACE.read_text())
    path = tmp_path / "workspace.yml"
    for folder in ("sql", "functions"):
        (tmp_path / folder).symlink_to(SAMPLE_WORKSPACE.parent / folder)
    path.write_text(yaml.safe_dump(config))
    with dg.instance_for_test() as instance:
        _apply(instance, _evaluate(instance, path))
        keys = set(instance.get_dynamic_partitions(CONNECTIONS))
        assert "audience.high_value_recent.meta_ads" in keys and len(keys) == len(config["connections"])

        assert isinstance(_evaluate(instance, path), dg.SkipReason)

        dropped = config["connections"].pop(0)
        config["connections"].append(
            {"source": "audience:cart_abandoners", "destination": "crm_hook", "send_track": True}
        )
        path.write_text(yaml.safe_dump(config))
        _apply(instance, _evaluate(instance, path))
        keys = set(instance.get_dynamic_partitions(CONNECTIONS))
        assert "audience.cart_abandoners.crm_hook" in keys
        assert f"audience.{dropped['source'].split(':')[1]}.{dropped['destination']}" not in keys


def test_partition_keys_are_sanitised() -> None:
    """Characters Dagster cannot use in multi-partition keys are replaced."""
    assert partition_key("audience.a|b,c [x]") == "audience.a_b_c__x_"
