"""The code location loads from workspace.yaml's module through the defs folder, and refuses an invalid
workspace."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from activation_pipeline.config import WorkspaceInvalidError
from activation_pipeline.orchestration.headless import definitions_with
from activation_pipeline.orchestration.scope import Scope
from activation_pipeline.orchestration.workspace import MAIN_JOB, WORKSPACE_ENV, workspace_definitions

ROOT = Path(__file__).resolve().parents[2]
ACME = Scope("acme-shop")


def test_workspace_yaml_points_at_the_definitions_module() -> None:
    """`dagster dev -w workspace.yaml` loads activation_pipeline.definitions."""
    location = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    assert location["module_name"] == "activation_pipeline.definitions"


def test_definitions_module_loads_the_sample_with_its_resources() -> None:
    """The module-level `defs` validate as loadable, serve the sample and carry the shared resources."""
    from activation_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def(ACME.name(MAIN_JOB)) is not None
    assert {"state", "compute", "delivery"} <= set(defs.resources or {})


def test_the_sample_folder_serves_the_file_named_by_the_environment(
    sample_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$ACTIVATION_WORKSPACE replaces the sample in `defs/sample/defs.yaml`; keys follow its workspace name."""
    sample_copy.write_text(
        sample_copy.read_text().replace("\nworkspace: acme-shop\n", "\nworkspace: acme-eu\n", 1)
    )
    monkeypatch.setenv(WORKSPACE_ENV, str(sample_copy))
    defs = dg.load_from_defs_folder(path_within_project=ROOT / "activation_pipeline")
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert Scope("acme-eu").key("audiences", "vip_loyal") in keys
    assert not any(key.path[0] == "acme-shop" for key in keys)


def test_invalid_workspace_fails_loading_with_every_problem(tmp_path: Path) -> None:
    """A broken workspace file fails the code location with the list of problems."""
    bad = tmp_path / "workspace.yml"
    bad.write_text("workspace: Bad Name\nsources: {}\n")
    with pytest.raises(WorkspaceInvalidError) as raised:
        workspace_definitions(bad)
    assert {p.path for p in raised.value.problems} == {"workspace", "sources.events"}


def test_workspace_config_asset_materialises(sample_copy: Path) -> None:
    """The configuration asset records counts as numeric metadata."""
    defs = definitions_with(str(sample_copy))
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(ACME.name(MAIN_JOB)).execute_in_process(instance=instance)
    assert result.success
    [materialisation] = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.step_materialization_data.materialization.asset_key == ACME.key("workspace_config")
    ]
    assert materialisation.metadata["audiences"].value == 9
