"""Journeys in Dagster: an asset per journey downstream of its audiences with per-journey figures, and the send
steps as partitions of the destinations' sync assets, run headless against the fake servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from activation_pipeline.config import load_workspace
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline.orchestration.headless import definitions_with, run_pipeline
from activation_pipeline.orchestration.resources import sandbox_resources
from activation_pipeline.orchestration.scope import Scope
from activation_pipeline.orchestration.sync_assets import connection_keys
from activation_pipeline.sandbox.workspace import sandboxed
from activation_pipeline.state.settings_history import history
from activation_pipeline.state.store import open_state

from ..test_compute.conftest import BASE_YAML, Messages, at
from .conftest import CART, cart_journey

STEPS = """
      - {key: wait_a_day, type: wait, duration: 1d, next: ordered}
      - {key: ordered, type: split, condition: {event: Order Completed, since: entry}, else: remind}
      - key: remind
        type: send
        destinations:
          - {destination: hook, send_track: true}
          - {destination: braze, setup: customized, trait_enrichment: [first_name]}
"""


@pytest.fixture
def workspace_file(tmp_path: Path) -> Path:
    """A small workspace with the cart journey, and its events."""
    m = Messages(tmp_path)
    m.identify("2026-10-01T08:00", user="u1", email="ann@example.com", first_name="Ann")
    m.track("2026-10-01T10:00", "Product Added", user="u1")
    m.track("2026-10-01T10:00", "Product Added", user="u2")
    m.track("2026-10-01T20:00", "Order Completed", user="u2")
    m.write()
    path = tmp_path / "workspace.yml"
    path.write_text(BASE_YAML + CART + cart_journey(steps=STEPS))
    return path


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


def test_journey_asset_lineage_and_send_partitions(workspace_file: Path) -> None:
    defs = definitions_with(str(workspace_file))
    graph = defs.resolve_asset_graph()
    scope = Scope("test-ws")
    journey = scope.key("journeys", "cart")
    assert scope.key("audiences", "cart_abandoners") in graph.get(journey).parent_keys
    assert journey in graph.get(scope.key("sync", "hook")).parent_keys
    workspace = load_workspace(workspace_file)
    assert connection_keys(workspace, "hook") == ["journey.cart.remind.hook"]
    assert connection_keys(workspace, "braze") == ["journey.cart.remind.braze"]


def test_headless_runs_move_people_and_deliver_send_steps(
    workspace_file: Path, instance: dg.DagsterInstance
) -> None:
    with sandboxed(workspace_file) as session:
        resources = sandbox_resources(session)
        first = run_pipeline(str(workspace_file), at("2026-10-01T12:00"), instance, resources=resources)
        assert first.success, first.failures
        figures = first.materialisations["journeys/cart"]
        assert (figures["entered"], figures["active"], figures["in_step.wait_a_day"], figures["sent"]) == (
            2,
            2,
            2,
            0,
        )

        second = run_pipeline(str(workspace_file), at("2026-10-02T12:00"), instance, resources=resources)
        assert second.success, second.failures
        figures = second.materialisations["journeys/cart"]
        assert (figures["entered"], figures["completed"], figures["sent"], figures["arrived.remind"]) == (
            0,
            2,
            1,
            1,
        )
        assert second.materialisations["sync/hook"]["entered"] == 1
        hook = session.servers["hook"]
        assert isinstance(hook, WebhookSandbox)
        assert {m["type"] for m in hook.messages()} == {"identify", "track"}

        store = open_state(session.state_directory / "test-ws.db")
        try:
            recorded = history(store, "test-ws", "journey.cart")
        finally:
            store.dispose()
        assert len(recorded) == 1 and recorded[0].settings is not None
        assert recorded[0].settings["steps"][0]["duration"] == "1d"


def test_a_send_target_can_be_resynced_and_planned(workspace_file: Path) -> None:
    from activation_pipeline.orchestration.resync import request_config_class, resolve_connections

    workspace = load_workspace(workspace_file)
    assert resolve_connections(workspace, "journey.cart.remind.braze", "", "new enrichment") == [
        "journey.cart.remind.braze"
    ]
    form = request_config_class(workspace)
    assert "journey.cart.remind.hook" in str(form.model_json_schema())
