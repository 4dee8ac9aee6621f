"""Both instance files load: the local one (embedded storage) and the production one on PostgreSQL."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from activation_pipeline.orchestration.headless import definitions_with
from activation_pipeline.orchestration.scope import Scope
from activation_pipeline.orchestration.workspace import MAIN_JOB

ROOT = Path(__file__).resolve().parents[2]
RESYNC_LIMIT = {"key": "activation/resync_workspace", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def _instance_from(config_file: Path, home: Path) -> dg.DagsterInstance:
    shutil.copy(config_file, home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def test_local_instance_has_no_storage_and_the_resync_limit(tmp_path: Path) -> None:
    """The top-level dagster.yaml needs no server and limits resyncs to one per workspace."""
    with _instance_from(ROOT / "dagster.yaml", tmp_path) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert RESYNC_LIMIT in limits


@pytest.mark.postgres
def test_production_instance_runs_on_postgres(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch, sample_copy: Path
) -> None:
    """deploy/dagster.yaml, with credentials from the environment, stores a real run in PostgreSQL."""
    for name, value in {
        "DAGSTER_PG_USERNAME": "postgres",
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_DB": pg_database,
        "DAGSTER_PG_PORT": "5432",
    }.items():
        monkeypatch.setenv(name, value)
    with _instance_from(ROOT / "deploy" / "dagster.yaml", tmp_path) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert RESYNC_LIMIT in limits
        acme = Scope("acme-shop")
        job = definitions_with(str(sample_copy)).resolve_job_def(acme.name(MAIN_JOB))
        result = job.execute_in_process(instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None
        assert instance.get_latest_materialization_event(acme.key("workspace_config")) is not None
