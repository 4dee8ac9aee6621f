"""Before a run: databases that cannot be reached are one line each; a failed run names its cause in one line."""

import socket
from pathlib import Path

import dagster as dg
import pytest
import yaml

from activation_pipeline.cli import main
from activation_pipeline.orchestration.headless import failure_cause
from activation_pipeline_tests.test_config.conftest import base

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.postgres
def test_check_env_names_each_database_it_cannot_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("META_TOKEN", "GADS_TOKEN", "MK_ID", "MK_SECRET", "BZ", "PROFILE_API_TOKEN"):
        monkeypatch.setenv(name, "x")
    port = _closed_port()
    monkeypatch.setenv("STATE_URL", f"postgresql+psycopg2://postgres:hunter22@127.0.0.1:{port}/test")
    config = base()
    config["state"] = {"url": {"env": "STATE_URL"}}
    config["compute"] = {"engine": "postgres", "url": PG_URL}
    path = tmp_path / "workspace.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["validate", "--check-env", str(path)]) == 1
    err = capsys.readouterr().err
    assert "1 problem(s)" in err
    [line] = [line for line in err.splitlines() if "state.url" in line]
    assert f"state.url: cannot connect to postgresql+psycopg2://postgres:***@127.0.0.1:{port}/test: " in line
    assert "hunter22" not in err and "compute.url" not in err


def test_a_failed_run_names_its_cause_in_one_line() -> None:
    @dg.op
    def land() -> None:
        raise ConnectionError(
            'connection to server at "db.internal", port 5432 failed: Connection refused\nmore'
        )

    @dg.job
    def landing() -> None:
        land()

    result = landing.execute_in_process(raise_on_error=False)
    assert failure_cause(result) == (
        'ConnectionError: connection to server at "db.internal", port 5432 failed: Connection refused'
    )
