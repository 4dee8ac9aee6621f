"""A run keeps the settings it started with: a later step of the same run reads the file as it was."""

from pathlib import Path
from types import SimpleNamespace

from activation_pipeline.config import Workspace
from activation_pipeline.orchestration.resources import StateStoreResource
from activation_pipeline.orchestration.runs import workspace_for_run
from activation_pipeline.state.run_settings import pin_settings
from activation_pipeline.state.store import open_state

CONNECTION = "audience.vip_loyal.crm_hook"


def test_pin_returns_the_first_text(tmp_path: Path) -> None:
    """The first text pinned for a run wins; another run pins its own."""
    store = open_state(tmp_path / "state.db")
    assert pin_settings(store, "run-1", "a") == "a"
    assert pin_settings(store, "run-1", "b") == "a"
    assert pin_settings(store, "run-2", "b") == "b"
    store.dispose()


def _step(path: Path, run_id: str) -> Workspace:
    """The workspace as a step of run `run_id` reads it (each step has its own resource)."""
    state = StateStoreResource()
    context = SimpleNamespace(run=SimpleNamespace(run_id=run_id))  # all a step's context gives it here
    try:
        return workspace_for_run(context, str(path), state)  # type: ignore[arg-type]
    finally:
        state.close()


def test_a_change_mid_run_applies_to_the_next_run(sample_copy: Path) -> None:
    """Editing the file between two steps of a run changes nothing for that run; the next run sees the edit."""
    first_step = _step(sample_copy, "run-a")
    assert first_step.connection(CONNECTION).send_track is True
    sample_copy.write_text(
        sample_copy.read_text().replace(
            "    send_track: true\n    id_sync: [{identifier: email, as: email, strategy: all}]",
            "    send_track: false\n    id_sync: [{identifier: email, as: email, strategy: all}]",
        )
    )
    later_step = _step(sample_copy, "run-a")
    assert later_step.connection(CONNECTION).send_track is True
    next_run = _step(sample_copy, "run-b")
    assert next_run.connection(CONNECTION).send_track is False
