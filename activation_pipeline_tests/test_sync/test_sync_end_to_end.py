"""The whole pipeline through Dagster against the fake servers: backfill, nothing twice, deltas, resync.

One sandbox session spans several headless runs, so the fake servers keep what they were sent. The delivery
resource is swapped for one without rate limiting (the limiter has its own tests), so the runs take seconds.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from activation_pipeline.config import load_workspace
from activation_pipeline.destinations.marketo_static_lists.server import MarketoSandbox
from activation_pipeline.orchestration.headless import RunSummary, definitions_with, run_pipeline
from activation_pipeline.orchestration.resources import ComputeResource, DeliveryResource, sandbox_resources
from activation_pipeline.orchestration.scope import RESYNC_WORKSPACE_TAG, SYNC_MODE_TAG, Scope
from activation_pipeline.orchestration.sync_assets import sync_job_name
from activation_pipeline.orchestration.sync_metadata import flat_figures
from activation_pipeline.sandbox.workspace import SandboxSession, sandboxed
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events

END = datetime(2026, 11, 1, tzinfo=UTC)
LAPSED = "audience.lapsed_customers.marketo"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxSession]:
    """A copy of the sample with small generated events, running against the fake servers."""
    import shutil

    root = tmp_path_factory.mktemp("e2e") / "sample"
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "data" / "sample",
        root,
        ignore=shutil.ignore_patterns("events", "state"),
    )
    write_events(
        GeneratorSpec(profiles=400, events=30_000, seed=11, end=END + timedelta(days=10), days=25),
        root / "events",
    )
    with sandboxed(root / "workspace.yml") as running:
        yield running


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    """One in-memory Dagster instance for the module's runs (no storage on disk to wait for)."""
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


def _resources(session: SandboxSession) -> dict[str, object]:
    """The sandbox's resources, delivering without a rate limiter."""
    resources = sandbox_resources(session)
    delivery = resources["delivery"]
    assert isinstance(delivery, DeliveryResource)
    return {
        **resources,
        "delivery": DeliveryResource(
            base_urls=delivery.base_urls, placeholder_secrets=True, rate_limited=False
        ),
    }


def _member_emails(session: SandboxSession, audience_key: str) -> set[str]:
    """Every email of every current member (without ID Sync, every value of an identifier is sent)."""
    workspace = load_workspace(session.workspace_path)
    compute = sandbox_resources(session)["compute"]  # the sandbox evaluates into its own directory
    assert isinstance(compute, ComputeResource)
    view = compute.results(workspace)
    profiles = view.profiles(sorted(view.members(audience_key)))
    return {i.value.strip().lower() for p in profiles.values() for i in p.identifiers if i.type == "email"}


def _audience_figures(summary: RunSummary) -> dict[str, int]:
    """`<audience>/size`, `/entered` and `/exited` of every audience the run evaluated."""
    return {
        f"{key.removeprefix('audiences/')}/{name}": int(value)
        for key, figures in summary.materialisations.items()
        if key.startswith("audiences/")
        for name, value in figures.items()
        if name in ("size", "entered", "exited")
    }


def _sent(summary: RunSummary) -> dict[str, int | float | str]:
    return {
        key: figures.get("sent", 0)
        for key, figures in summary.materialisations.items()
        if key.startswith("sync/")
    }


def test_backfill_nothing_twice_deltas_and_resync(
    session: SandboxSession, instance: dg.DagsterInstance
) -> None:
    """First run sends every member; the same run again sends nothing; a later time sends only changes;
    a resync is refused without its workspace tag and otherwise sends every current member again."""
    path = str(session.workspace_path)
    first = run_pipeline(path, END, instance, resources=_resources(session))
    assert first.success, first.failures
    sent = _sent(first)
    assert sum(int(v) for v in sent.values()) > 0 and sent["sync/meta_ads"], sent
    marketo = session.servers["marketo"]
    assert isinstance(marketo, MarketoSandbox)
    assert marketo.member_emails(1042) == _member_emails(session, "lapsed_customers")
    assert marketo.member_emails(1043) == _member_emails(session, "enterprise_accounts")

    again = run_pipeline(path, END, instance, resources=_resources(session))
    assert again.success and set(_sent(again).values()) == {0}

    later = run_pipeline(path, END + timedelta(days=9), instance, resources=_resources(session))
    assert later.success
    audiences = _audience_figures(later)
    moved = sum(
        int(audiences[f"{key}/{change}"])
        for key in ("lapsed_customers", "enterprise_accounts")
        for change in ("entered", "exited")
    )
    marketo_sync = later.materialisations["sync/marketo"]
    assert int(marketo_sync["entered"]) + int(marketo_sync["exited"]) == moved
    assert marketo.member_emails(1042) == _member_emails(session, "lapsed_customers")
    assert marketo.member_emails(1043) == _member_emails(session, "enterprise_accounts")
    braze = later.materialisations["sync/braze"]
    assert int(braze["entered"]) + int(braze["exited"]) > 0, "a 7-day audience moves over 9 days"

    _resync_is_guarded_and_resends_everyone(session, instance, audiences)


def _resync_is_guarded_and_resends_everyone(
    session: SandboxSession, instance: dg.DagsterInstance, audiences: dict[str, int]
) -> None:
    path = str(session.workspace_path)
    workspace = load_workspace(path)
    connection = max(
        ("audience.lapsed_customers.marketo", "audience.enterprise_accounts.marketo"),
        key=lambda cid: audiences[f"{cid.split('.')[1]}/size"],
    )
    scope = Scope(workspace.workspace)
    job = definitions_with(path, _resources(session)).resolve_job_def(sync_job_name(scope, "marketo"))
    instance.add_dynamic_partitions(scope.partitions("marketo").name or "", [connection])

    refused = job.execute_in_process(
        partition_key=connection, instance=instance, tags={SYNC_MODE_TAG: "resync"}, raise_on_error=False
    )
    assert not refused.success

    marketo = session.servers["marketo"]
    before = len(marketo.requests)
    done = job.execute_in_process(
        partition_key=connection,
        instance=instance,
        tags={SYNC_MODE_TAG: "resync", RESYNC_WORKSPACE_TAG: workspace.workspace},
    )
    assert done.success
    [event] = done.get_asset_materialization_events()
    figures = flat_figures(event.step_materialization_data.materialization.metadata)
    assert figures["sent"] == figures["entered"] == audiences[f"{connection.split('.')[1]}/size"]
    assert figures["sent"] > 0 and len(marketo.requests) > before
    assert figures["batches_planned"] >= 1 and figures["records_planned"] >= figures["sent"]


def test_plan_job_records_the_plan(session: SandboxSession, instance: dg.DagsterInstance) -> None:
    """The plan job sends nothing and records one observation per connection on its sync asset."""
    path = str(session.workspace_path)
    before = {d: len(s.requests) for d, s in session.servers.items()}
    scope = Scope(load_workspace(path).workspace)
    result = (
        definitions_with(path, _resources(session))
        .resolve_job_def(scope.name("plan_job"))
        .execute_in_process(
            instance=instance,
            run_config={"ops": {scope.name("plan_syncs"): {"config": {"mode": "resync"}}}},
        )
    )
    assert result.success
    observations = [
        e.asset_observation_data.asset_observation
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert len(observations) == len(load_workspace(path).delivery_connections())  # journey send targets too
    assert {d: len(s.requests) for d, s in session.servers.items()} == before
    assert all(o.metadata["plan/records"].value >= 0 for o in observations)
