"""The instance settings reach `$DAGSTER_HOME/dagster.yaml` whatever DAGSTER_HOME is, and Dagster applies them;
what `ui` tells about the sample's time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from activation_pipeline.cli import main
from activation_pipeline.orchestration.instance import RESYNC_LIMIT, check_instance, missing_settings
from activation_pipeline.orchestration.scope import RESYNC_WORKSPACE_TAG
from activation_pipeline.orchestration.ui import events_end, stale_events_note

REPO = Path(__file__).resolve().parents[1]


def _limits(instance: dg.DagsterInstance) -> list[dict[str, object]]:
    """The tag concurrency limits the instance's run queue applies."""
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    return [dict(limit) for limit in queue.tag_concurrency_limits]


def test_instance_command_writes_the_limit_into_a_fresh_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty DAGSTER_HOME gets the resync limit and telemetry off; Dagster's queued coordinator applies it."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert check_instance() == [
        f"no run-queue limit of one run per '{RESYNC_WORKSPACE_TAG}' value (resyncs would not queue)",
        "telemetry is not turned off",
    ]
    assert main(["instance"]) == 0
    assert check_instance() == []
    with dg.DagsterInstance.get() as instance:
        assert RESYNC_LIMIT in _limits(instance)
        assert instance.telemetry_enabled is False


def test_instance_command_keeps_other_settings_and_replaces_a_wrong_limit(tmp_path: Path) -> None:
    """Storage and other limits stay; a resync limit of 3 becomes 1; a second call changes nothing."""
    existing = {
        "storage": {"sqlite": {"base_dir": str(tmp_path / "history")}},
        "concurrency": {
            "runs": {
                "max_concurrent_runs": 4,
                "tag_concurrency_limits": [
                    {"key": "team", "limit": 2},
                    {"key": RESYNC_WORKSPACE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 3},
                ],
            }
        },
        "telemetry": {"enabled": True},
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(existing))
    assert len(check_instance(tmp_path)) == 2
    assert main(["instance", "--home", str(tmp_path)]) == 0
    written = yaml.safe_load((tmp_path / "dagster.yaml").read_text())
    assert written["storage"] == existing["storage"]
    assert written["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert written["concurrency"]["runs"]["tag_concurrency_limits"] == [
        {"key": "team", "limit": 2},
        RESYNC_LIMIT,
    ]
    assert written["telemetry"] == {"enabled": False}
    before = (tmp_path / "dagster.yaml").read_text()
    assert main(["instance", "--home", str(tmp_path)]) == 0
    assert (tmp_path / "dagster.yaml").read_text() == before


def test_instance_command_without_a_home_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No DAGSTER_HOME and no --home: exit 2 naming what to give."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["instance"]) == 2
    assert "DAGSTER_HOME is not set" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["dagster.yaml", "deploy/dagster.yaml"])
def test_shipped_instance_files_hold_the_settings(path: str) -> None:
    """The repository's local and production instance files never drift from the settings `instance` writes."""
    assert missing_settings(yaml.safe_load((REPO / path).read_text())) == []


def test_ui_notes_sample_events_that_end_days_ago(tmp_path: Path) -> None:
    """`ui` tells how to evaluate stale sample events (the as_of tag) and says nothing for recent ones."""
    for day in ("2026-10-30", "2026-10-31"):
        (tmp_path / f"{day}.jsonl").write_text("{}\n")
    end = events_end(tmp_path)
    assert end == datetime(2026, 11, 1, tzinfo=UTC)
    note = stale_events_note(end, datetime(2026, 11, 27, 17, tzinfo=UTC))
    assert note is not None and "activation/as_of=2026-11-01T00:00:00+00:00" in note
    assert stale_events_note(end, datetime(2026, 11, 1, 12, tzinfo=UTC)) is None
    assert events_end(tmp_path / "none") is None
