"""A run keeps the settings it started with: a later step of the same run reads the file as it was."""

from pathlib import Path

import dagster as dg

from activation_pipeline.defs.resources import WorkspaceResource
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


def _step(path: Path, run_id: str) -> WorkspaceResource:
    """The resource as a step of run `run_id` gets it (each step process builds its own)."""
    resource = WorkspaceResource(path=str(path))
    with dg.instance_for_test() as instance:
        context = dg.build_init_resource_context(instance=instance)
        resource.setup_for_execution(context)
    resource._run_id = run_id  # what Dagster's init context carries for a real run
    return resource


def test_a_change_mid_run_applies_to_the_next_run(sample_copy: Path) -> None:
    """Editing the file between two steps of a run changes nothing for that run; the next run sees the edit."""
    first_step = _step(sample_copy, "run-a").workspace
    assert first_step.connection(CONNECTION).send_track is True
    sample_copy.write_text(
        sample_copy.read_text().replace(
            "    send_track: true\n    id_sync: [{identifier: email, as: email, strategy: all}]",
            "    send_track: false\n    id_sync: [{identifier: email, as: email, strategy: all}]",
        )
    )
    later_step = _step(sample_copy, "run-a").workspace
    assert later_step.connection(CONNECTION).send_track is True
    next_run = _step(sample_copy, "run-b").workspace
    assert next_run.connection(CONNECTION).send_track is False
