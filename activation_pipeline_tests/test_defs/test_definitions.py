"""The Dagster code location loads from workspace.yaml's module, and refuses an invalid workspace."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from activation_pipeline.config import WorkspaceInvalidError
from activation_pipeline.defs.build import build_definitions
from activation_pipeline.defs.jobs import MAIN_JOB

ROOT = Path(__file__).resolve().parents[2]


def test_workspace_yaml_points_at_the_definitions_module() -> None:
    """`dagster dev -w workspace.yaml` loads activation_pipeline.definitions."""
    location = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    assert location["module_name"] == "activation_pipeline.definitions"


def test_definitions_module_loads() -> None:
    """The module-level `defs` validate as loadable and carry the main job."""
    from activation_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def(MAIN_JOB) is not None


def test_invalid_workspace_fails_loading_with_every_problem(tmp_path: Path) -> None:
    """A broken workspace file fails the code location with the list of problems."""
    bad = tmp_path / "workspace.yml"
    bad.write_text("workspace: Bad Name\nsources: {}\n")
    with pytest.raises(WorkspaceInvalidError) as raised:
        build_definitions(str(bad))
    assert {p.path for p in raised.value.problems} == {"workspace", "sources.events"}


def test_workspace_config_asset_materialises(sample_copy: Path) -> None:
    """The configuration asset records counts as numeric metadata."""
    defs = build_definitions(str(sample_copy))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(MAIN_JOB).execute_in_process(instance=instance)
    assert result.success
    [materialisation] = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.step_materialization_data.materialization.asset_key == dg.AssetKey("workspace_config")
    ]
    assert materialisation.metadata["audiences"].value == 8
