"""Sensors and schedules on a real Dagster instance: partitions follow the file, resyncs one per workspace."""

import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from activation_pipeline.config import load_workspace
from activation_pipeline.orchestration.headless import definitions_with
from activation_pipeline.orchestration.resources import StateStoreResource
from activation_pipeline.orchestration.resync import REQUEST_JOB, evaluate_resync_queue
from activation_pipeline.orchestration.scope import (
    RESYNC_REQUEST_TAG,
    RESYNC_WORKSPACE_TAG,
    SYNC_MODE_TAG,
    Scope,
)
from activation_pipeline.orchestration.sensors import build_partitions_sensor
from activation_pipeline.orchestration.sync_assets import sync_job_name

CONNECTION = "audience.high_value_recent.meta_ads"
ACME, OTHER = Scope("acme-shop"), Scope("other-shop")


def _partitions(scope: Scope, instance: dg.DagsterInstance, destination: str) -> set[str]:
    return set(instance.get_dynamic_partitions(scope.partitions(destination).name or ""))


def _apply(instance: dg.DagsterInstance, result: dg.SensorResult | dg.SkipReason) -> None:
    # build_sensor_context does not apply partition requests; the daemon would.
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(request.partitions_def_name, key)


def _partitions_tick(instance: dg.DagsterInstance, path: Path) -> dg.SensorResult | dg.SkipReason:
    sensor = build_partitions_sensor(ACME, str(path))
    result = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SensorResult | dg.SkipReason)
    return result


def test_partitions_follow_the_config(sample_copy: Path) -> None:
    """New connections become partitions of their destination, removed ones go, an unchanged file skips."""
    config = yaml.safe_load(sample_copy.read_text())
    with dg.DagsterInstance.ephemeral() as instance:
        _apply(instance, _partitions_tick(instance, sample_copy))
        assert _partitions(ACME, instance, "meta_ads") == {CONNECTION}
        assert _partitions(ACME, instance, "crm_hook") == {
            "audience.vip_loyal.crm_hook",
            "trait.favourite_category.crm_hook",
            "journey.cart_abandonment.converted.crm_hook",  # the sample journey's send target
        }
        assert isinstance(_partitions_tick(instance, sample_copy), dg.SkipReason)

        config["connections"] = [c for c in config["connections"] if c["destination"] != "meta_ads"]
        config["connections"].append(
            {"source": "audience:cart_abandoners", "destination": "crm_hook", "send_track": True}
        )
        sample_copy.write_text(yaml.safe_dump(config))
        _apply(instance, _partitions_tick(instance, sample_copy))
        assert _partitions(ACME, instance, "meta_ads") == set()
        assert "audience.cart_abandoners.crm_hook" in _partitions(ACME, instance, "crm_hook")


def _second_workspace(sample_copy: Path, tmp_path: Path) -> Path:
    other = tmp_path / "other"
    shutil.copytree(sample_copy.parent, other)
    path = other / "workspace.yml"
    path.write_text(path.read_text().replace("workspace: acme-shop", "workspace: other-shop"))
    return path


def _request_run(
    instance: dg.DagsterInstance, path: Path, config: dict[str, str]
) -> dg.ExecuteInProcessResult:
    """Run the workspace's request_resync job with a Launchpad config, as the UI does."""
    scope = Scope(load_workspace(path).workspace)
    job = definitions_with(str(path)).resolve_job_def(scope.name(REQUEST_JOB))
    return job.execute_in_process(
        instance=instance,
        run_config={"ops": {scope.name("record_resync_request"): {"config": config}}},
        raise_on_error=False,
    )


def _request(instance: dg.DagsterInstance, path: Path, connection: str, reason: str) -> None:
    """Record a request the way the UI does."""
    assert _request_run(instance, path, {"connection": connection, "reason": reason}).success


def _queue_tick(instance: dg.DagsterInstance, path: Path) -> dg.SensorResult:
    workspace = load_workspace(path)
    state = StateStoreResource()
    try:
        return evaluate_resync_queue(
            dg.build_sensor_context(instance=instance), Scope(workspace.workspace), workspace, state
        )
    finally:
        state.close()


def _start(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.DagsterRun:
    """Stand in for the daemon: create the run the sensor asked for, already started."""
    run = dg.DagsterRun(
        job_name=request.job_name or "",
        run_id=request.run_key or "",
        tags=dict(request.tags),
        status=dg.DagsterRunStatus.STARTED,
    )
    instance.add_run(run)
    return run


def test_one_resync_per_workspace_others_go_ahead(sample_copy: Path, tmp_path: Path) -> None:
    """Two requests for one workspace run one after the other; another workspace is not held up;
    a failed resync releases the line."""
    other = _second_workspace(sample_copy, tmp_path)
    with dg.DagsterInstance.ephemeral() as instance:
        _request(instance, sample_copy, CONNECTION, "new enrichment")
        _request(instance, sample_copy, "audience.high_value_recent.google_ads", "new id sync")
        _request(instance, other, CONNECTION, "first")

        first = _queue_tick(instance, sample_copy)
        [launch] = first.run_requests or []
        assert launch.job_name == sync_job_name(ACME, "meta_ads") and launch.partition_key == CONNECTION
        assert launch.tags[SYNC_MODE_TAG] == "resync" and launch.tags[RESYNC_WORKSPACE_TAG] == "acme-shop"
        run = _start(instance, launch)

        waiting = _queue_tick(instance, sample_copy)
        assert (
            not waiting.run_requests
            and waiting.skip_reason
            and "in progress" in (waiting.skip_reason.skip_message or "")
        )

        [elsewhere] = _queue_tick(instance, other).run_requests or []
        assert elsewhere.tags[RESYNC_WORKSPACE_TAG] == "other-shop"
        assert elsewhere.job_name == sync_job_name(OTHER, "meta_ads")

        instance.report_run_failed(run)
        [second] = _queue_tick(instance, sample_copy).run_requests or []
        assert second.partition_key == "audience.high_value_recent.google_ads"
        assert second.tags[RESYNC_REQUEST_TAG] != launch.tags[RESYNC_REQUEST_TAG]


def test_cancelling_run_still_counts(sample_copy: Path) -> None:
    """A resync being cancelled, even one launched by hand, holds the line until it is finished."""
    with dg.DagsterInstance.ephemeral() as instance:
        _request(instance, sample_copy, CONNECTION, "x")
        instance.add_run(
            dg.DagsterRun(
                job_name=sync_job_name(ACME, "meta_ads"),
                run_id="manual",
                tags={RESYNC_WORKSPACE_TAG: "acme-shop"},
                status=dg.DagsterRunStatus.CANCELING,
            )
        )
        assert not _queue_tick(instance, sample_copy).run_requests


def test_request_for_unknown_connection_is_refused(sample_copy: Path) -> None:
    """The Launchpad form offers the workspace's connections and audiences as choices (Dagster enums, a list
    in the Launchpad) and refuses any other value before a run starts; both or neither fails the run."""
    scope = Scope(load_workspace(sample_copy).workspace)
    job = definitions_with(str(sample_copy)).resolve_job_def(scope.name(REQUEST_JOB))
    schema = job.run_config_schema.config_type_dict_by_key
    connections = [e.config_value for e in schema[f"{scope.ident}__connection"].enum_values]
    audiences = [e.config_value for e in schema[f"{scope.ident}__audience"].enum_values]
    assert {c.connection_id for c in load_workspace(sample_copy).connections} <= set(connections)
    assert CONNECTION in connections and "high_value_recent" in audiences and "vip_loyal" in audiences
    with dg.DagsterInstance.ephemeral() as instance:
        with pytest.raises(dg.DagsterInvalidConfigError, match=r"audience\.nope\.meta_ads"):
            _request_run(instance, sample_copy, {"connection": "audience.nope.meta_ads", "reason": "x"})
        both = {"connection": CONNECTION, "audience": "high_value_recent", "reason": "x"}
        assert not _request_run(instance, sample_copy, both).success
        assert not _request_run(instance, sample_copy, {"reason": "x"}).success


def test_audience_request_covers_all_its_connections(sample_copy: Path) -> None:
    """Requesting by audience queues one resync per connection of that audience."""
    with dg.DagsterInstance.ephemeral() as instance:
        config = {"audience": "high_value_recent", "reason": "new settings"}
        assert _request_run(instance, sample_copy, config).success
        from activation_pipeline.state.resync_requests import requests
        from activation_pipeline.state.store import open_state

        store = open_state(load_workspace(sample_copy).state_location())
        assert [r.connection_id for r in requests(store)] == [
            CONNECTION,
            "audience.high_value_recent.google_ads",
            "audience.high_value_recent.sfmc_lists",
            "audience.high_value_recent.intercom",
            "audience.high_value_recent.sendgrid",
        ]
        store.dispose()


@pytest.mark.parametrize(
    ("hour", "expected"),
    [(6, {"audience.high_value_recent.google_ads"}), (7, None)],
)
def test_google_ads_ticks_every_six_hours(sample_copy: Path, hour: int, expected: set[str] | None) -> None:
    """The Google Ads schedule is `0 */6 * * *` and requests an incremental sync of each of its connections."""
    defs = definitions_with(str(sample_copy))
    schedule = defs.resolve_schedule_def(ACME.name("sync_google_ads_schedule"))
    assert schedule.cron_schedule == "0 */6 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_schedule_def(ACME.name("sync_meta_ads_schedule")).cron_schedule == "0 * * * *"
    assert defs.resolve_schedule_def(ACME.name("sync_crm_hook_schedule")).cron_schedule == "*/15 * * * *"
    if expected is None:
        return
    with dg.instance_for_test() as instance:
        _apply(instance, _partitions_tick(instance, sample_copy))
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 11, 2, hour, tzinfo=UTC),
            repository_def=defs.get_repository_def(),
        )
        requests = schedule.evaluate_tick(context).run_requests or []
    assert {r.partition_key for r in requests} == expected
    assert all(r.tags[SYNC_MODE_TAG] == "incremental" for r in requests)
