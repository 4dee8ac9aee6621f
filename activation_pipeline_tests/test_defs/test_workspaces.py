"""One code location, many workspaces: a second workspace runs beside the sample on one instance, with its
own asset keys, jobs and materialisation history."""

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from activation_pipeline.orchestration.resources import DeliveryResource, sandbox_resources
from activation_pipeline.orchestration.scope import AS_OF_TAG, SYNC_MODE_TAG, Scope
from activation_pipeline.orchestration.sync_assets import sync_job_name
from activation_pipeline.orchestration.workspace import (
    LAND_JOB,
    MAIN_JOB,
    SAMPLE_WORKSPACE,
    WorkspaceComponent,
    default_resources,
)
from activation_pipeline.sandbox.workspace import SandboxSession, sandboxed
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events

END = datetime(2026, 11, 1, tzinfo=UTC)
HOOK = "trait.favourite_category.crm_hook"
NAMES = {"acme-shop": 150, "other-shop": 90}  # workspace -> generated profiles, so their figures differ


def _copy(root: Path, name: str, profiles: int) -> Path:
    shutil.copytree(SAMPLE_WORKSPACE.parent, root / name, ignore=shutil.ignore_patterns("events", "state"))
    path = root / name / "workspace.yml"
    path.write_text(path.read_text().replace("\nworkspace: acme-shop\n", f"\nworkspace: {name}\n", 1))
    write_events(
        GeneratorSpec(profiles=profiles, events=profiles * 25, days=6, end=END, seed=3),
        path.parent / "events",
    )
    return path


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[SandboxSession]]:
    """Two copies of the sample under different workspace names, each with its fake servers."""
    root = tmp_path_factory.mktemp("workspaces")
    with ExitStack() as stack:
        yield [stack.enter_context(sandboxed(_copy(root, n, p))) for n, p in NAMES.items()]


def _location(sessions: list[SandboxSession]) -> dg.Definitions:
    """One code location serving both workspaces (one component each), sending to their fake servers."""
    resources = sandbox_resources(*sessions, state_directory=sessions[0].state_directory)
    delivery = resources["delivery"]
    assert isinstance(delivery, DeliveryResource)
    resources["delivery"] = DeliveryResource(
        base_urls=delivery.base_urls, placeholder_secrets=True, rate_limited=False
    )
    components = [
        dg.build_defs_for_component(WorkspaceComponent(path=str(s.workspace_path))) for s in sessions
    ]
    return dg.Definitions.merge(*components, dg.Definitions(resources={**default_resources(), **resources}))


def test_two_workspaces_share_a_location_and_an_instance(sessions: list[SandboxSession]) -> None:
    """Each workspace lands, evaluates and syncs under its own keys; neither sees the other's history."""
    defs = _location(sessions)
    dg.Definitions.validate_loadable(defs)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    by_workspace = {name: {k for k in keys if k.path[0] == name} for name in NAMES}
    assert by_workspace["acme-shop"] and len(by_workspace["acme-shop"]) == len(by_workspace["other-shop"])
    assert by_workspace["acme-shop"] | by_workspace["other-shop"] == keys

    with dg.DagsterInstance.ephemeral() as instance:
        for session in sessions:
            scope = Scope(session.workspace)
            assert defs.resolve_job_def(scope.name(LAND_JOB)).execute_in_process(instance=instance).success
            main = defs.resolve_job_def(scope.name(MAIN_JOB))
            assert main.execute_in_process(instance=instance, tags={AS_OF_TAG: END.isoformat()}).success
            instance.add_dynamic_partitions(scope.partitions("crm_hook").name or "", [HOOK])
            sync = defs.resolve_job_def(sync_job_name(scope, "crm_hook"))
            tags = {SYNC_MODE_TAG: "incremental"}
            assert sync.execute_in_process(instance=instance, partition_key=HOOK, tags=tags).success

        profiles = {}
        for session in sessions:
            scope = Scope(session.workspace)
            events = instance.fetch_materializations(scope.key("profiles"), limit=10).records
            assert len(events) == 1, session.workspace  # one run each, not two under one key
            materialisation = events[0].asset_materialization
            assert materialisation is not None
            profiles[session.workspace] = materialisation.metadata["profiles"].value
            synced = instance.get_latest_materialization_event(scope.key("sync", "crm_hook"))
            assert synced is not None and synced.asset_materialization is not None
            assert synced.asset_materialization.partition == HOOK
            assert session.delivered()["crm_hook"] > 0  # each workspace's own fake server
        assert profiles["acme-shop"] != profiles["other-shop"]
