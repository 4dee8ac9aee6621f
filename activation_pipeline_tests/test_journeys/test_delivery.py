"""Journey send steps delivered through the same engine as connections, to every kind of destination.

A cart journey (wait 1d, split on ordered since entry, else send) sends through Braze (event, with Trait
Enrichment and ID Sync), a classic webhook, a destination function and Marketo Static Lists (a list), all on
their fake servers over real HTTP. What reached the send step is delivered once; a repeated sync sends nothing;
a resync sends the step's members again with today's settings; a re-entry reaching the step is sent again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.config import Workspace
from activation_pipeline.destinations.braze.server import BrazeSandbox
from activation_pipeline.destinations.http import RetryPolicy
from activation_pipeline.destinations.marketo_static_lists.server import MarketoSandbox
from activation_pipeline.destinations.registry import CATALOGUE
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline.journeys.evaluate import evaluate_journeys
from activation_pipeline.sandbox.base import SandboxServer
from activation_pipeline.state.schema import delivery_ledger
from activation_pipeline.state.store import StateStore, open_state
from activation_pipeline.sync.compute_view import ResultsView, export_results
from activation_pipeline.sync.delta import SyncMode
from activation_pipeline.sync.plan import plan_connection
from activation_pipeline.sync.runner import sync_destination_of_workspace

from ..test_compute.conftest import Messages, at, make_workspace

NO_WAIT = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0)
STEP = "j_o_cart__remind"

FUNCTION = """
import json
from pathlib import Path


def on_track(event, settings):
    with (Path(__file__).resolve().parent.parent / settings["out"]).open("a") as out:
        out.write(json.dumps(event) + "\\n")
    return {"ok": True}


def on_identify(event, settings):
    return on_track(event, settings)
"""


def journey_yaml(enrich: str = "first_name", marketo: str = "{list_id: 77}") -> str:
    """The workspace: cart audience, four destinations, and the journey sending to all of them."""
    return f"""
traits:
  custom: [first_name, plan, marketing_ok]
audiences:
  - key: cart_abandoners
    where:
      all:
        - {{event: Product Added, within: 7d}}
        - {{event: Order Completed, within: 7d, at_most: 0}}
destinations:
  - {{id: braze, type: braze, settings: {{base_url: "https://rest.iad-01.braze.com", api_key: {{env: J_BRAZE_KEY}}}}}}
  - {{id: hook, type: webhook, settings: {{url: "https://hooks.example.com/j"}}}}
  - id: mkto
    type: marketo_static_lists
    settings: {{base_url: "https://123-abc-456.mktorest.com", client_id: {{env: J_MK_ID}}, client_secret: {{env: J_MK_SECRET}}}}
  - id: fn
    type: function
    settings: {{handler: functions/journey.py, settings: {{out: sent.jsonl}}}}
journeys:
  - key: cart
    entry: {{audience: cart_abandoners}}
    reentry: after_exit
    steps:
      - {{key: wait_a_day, type: wait, duration: 1d, next: ordered}}
      - {{key: ordered, type: split, condition: {{event: Order Completed, since: entry}}, else: remind}}
      - key: remind
        type: send
        destinations:
          - destination: braze
            setup: customized
            send_track: true
            trait_enrichment: [{enrich}]
            id_sync: [{{identifier: email, as: email, strategy: last_added}}]
          - {{destination: hook, send_track: true}}
          - {{destination: mkto, settings: {marketo}}}
          - {{destination: fn, send_identify: false, send_track: true}}
"""


class World:
    """The workspace on fake servers, its compute engine, state store and message builder."""

    def __init__(self, root: Path, servers: ExitStack) -> None:
        self.root = root
        self.servers: dict[str, SandboxServer] = {}
        self.messages = Messages(root)
        self.stack = servers
        (root / "functions").mkdir()
        (root / "functions" / "journey.py").write_text(FUNCTION)
        self.workspace = self.configure(journey_yaml())
        self.engine = ComputeEngine(url=f"duckdb:///{root / 'compute.duckdb'}", schema="s")
        self.store: StateStore = open_state(root / "state.db")

    def configure(self, text: str) -> Workspace:
        """Validate the workspace text and point its destinations at fake servers (started once each)."""
        loaded = make_workspace(self.root, text)
        destinations = []
        for d in loaded.destinations:
            start = CATALOGUE[d.type].fake
            if start is None:
                destinations.append(d)
                continue
            if d.id not in self.servers:
                server, url = start(d.settings, lambda name, d=d: os.environ[getattr(d.settings, name).env])
                self.stack.callback(server.stop)
                self.servers[d.id] = server
                self.servers[f"{d.id}:url"] = url  # type: ignore[assignment]
            url = self.servers[f"{d.id}:url"]
            field = "url" if "url" in type(d.settings).model_fields else "base_url"
            destinations.append(d.model_copy(update={"settings": d.settings.model_copy(update={field: url})}))
        return loaded.model_copy(update={"destinations": destinations}).with_base_dir(loaded.base_dir)

    def evaluate(self, when: str) -> ResultsView:
        """Land, evaluate audiences and journeys at `when`, and export the results."""
        self.messages.write()
        pipeline = ComputePipeline(self.workspace, self.engine)
        pipeline.land()
        pipeline.evaluate(at(when))
        evaluate_journeys(self.engine, self.workspace, at(when))
        export_results(pipeline, self.root / "results", at(when))
        return ResultsView(self.root / "results")

    def sync(self, view: ResultsView, mode: SyncMode = SyncMode.INCREMENTAL) -> dict[str, dict[str, int]]:
        """Sync every destination; the per-connection figures."""
        figures: dict[str, dict[str, int]] = {}
        for d in self.workspace.destinations:
            result = sync_destination_of_workspace(
                self.store, view, self.workspace, d.id, view.as_of, mode=mode, retry=NO_WAIT,
                limiter_factory=lambda _store, _destination: None,
            )  # fmt: skip
            figures.update(result.connections)
        return figures

    def acknowledged(self) -> dict[str, int]:
        """Acknowledged ledger records per connection."""
        t = delivery_ledger
        with self.store.read() as db:
            rows = db.execute(
                sa.select(t.c.connection_id, sa.func.count())
                .where(t.c.outcome == "acknowledged")
                .group_by(t.c.connection_id)
            ).all()
        return {r[0]: int(r[1]) for r in rows}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name in ("J_BRAZE_KEY", "J_MK_ID", "J_MK_SECRET"):
        monkeypatch.setenv(name, f"sandbox-{name.lower()}")
    with ExitStack() as servers:
        built = World(tmp_path, servers)
        try:
            yield built
        finally:
            built.store.dispose()
            built.engine.dispose()


IDS = [
    "journey.cart.remind.braze",
    "journey.cart.remind.hook",
    "journey.cart.remind.mkto",
    "journey.cart.remind.fn",
]


def _sent_function_events(root: Path) -> list[dict[str, Any]]:
    path = root / "sent.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_send_step_delivers_to_every_destination_kind_once(world: World) -> None:
    m = world.messages
    m.identify("2026-10-01T08:00", user="u1", email="Ann@Example.com", first_name="Ann")
    m.identify("2026-10-01T08:00", user="u2", email="bob@example.com", first_name="Bob")
    m.track("2026-10-01T10:00", "Product Added", user="u1")
    m.track("2026-10-01T10:00", "Product Added", user="u2")
    m.track("2026-10-02T09:00", "Order Completed", user="u2")

    view = world.evaluate("2026-10-01T12:00")
    first = world.sync(view)
    assert {k: v["entered"] for k, v in first.items()} == dict.fromkeys(IDS, 0)  # nobody at the step yet

    view = world.evaluate("2026-10-02T12:00")
    plans = {
        c: plan_connection(
            world.store,
            view,
            world.workspace,
            world.workspace.connection(c),
            view.as_of,
            SyncMode.INCREMENTAL,
        )
        for c in IDS
    }
    assert {c: p.adds for c, p in plans.items()} == dict.fromkeys(IDS, 1)
    figures = world.sync(view)
    assert {k: v["entered"] for k, v in figures.items()} == dict.fromkeys(IDS, 1)
    assert world.acknowledged() == {
        "journey.cart.remind.braze": 2,  # identify and track of u1
        "journey.cart.remind.hook": 2,
        "journey.cart.remind.mkto": 1,
        "journey.cart.remind.fn": 1,
    }

    braze = world.servers["braze"]
    assert isinstance(braze, BrazeSandbox)
    (user,) = braze.users.values()
    assert user[STEP] is True and user["first_name"] == "Ann" and user["email"] == "ann@example.com"
    assert [e["name"] for e in braze.events] == ["Audience Entered"]
    assert braze.events[0]["properties"]["journey_step_key"] == "remind"

    hook = world.servers["hook"]
    assert isinstance(hook, WebhookSandbox)
    identify, track = sorted(hook.messages(), key=lambda msg: msg["type"])
    assert identify["traits"][STEP] is True and identify["userId"] == "u1"
    assert track["event"] == "Audience Entered"
    assert track["properties"] == {
        "audience_key": STEP,
        "journey_key": "cart",
        "journey_step_key": "remind",
        STEP: True,
    }
    assert track["context"]["personas"]["computation_class"] == "journey_step"
    assert track["context"]["personas"]["journey_key"] == "cart"

    marketo = world.servers["mkto"]
    assert isinstance(marketo, MarketoSandbox)
    assert marketo.member_emails(77) == {"ann@example.com"}

    (event,) = _sent_function_events(world.root)
    assert event["event"] == "Audience Entered" and event["properties"][STEP] is True

    again = world.sync(view)
    assert {k: v["entered"] for k, v in again.items()} == dict.fromkeys(IDS, 0)  # nothing twice


def test_resync_sends_members_again_with_todays_settings(world: World) -> None:
    m = world.messages
    m.identify("2026-10-01T08:00", user="u1", email="ann@example.com", first_name="Ann", plan="pro")
    m.track("2026-10-01T10:00", "Product Added", user="u1")
    world.evaluate("2026-10-01T12:00")
    view = world.evaluate("2026-10-02T12:00")
    world.sync(view)
    world.workspace = world.configure(journey_yaml(enrich="plan"))  # Braze now gets `plan`, not `first_name`
    resync = world.sync(view, SyncMode.RESYNC)
    assert resync["journey.cart.remind.braze"]["entered"] == 1
    braze = world.servers["braze"]
    assert isinstance(braze, BrazeSandbox)
    (user,) = braze.users.values()
    assert user["plan"] == "pro"
    assert len(braze.events) == 2


def test_a_reentry_reaching_the_step_is_sent_again(world: World) -> None:
    m = world.messages
    m.identify("2026-10-01T08:00", user="u1", email="ann@example.com")
    m.track("2026-10-01T10:00", "Product Added", user="u1")
    world.evaluate("2026-10-01T12:00")
    world.sync(world.evaluate("2026-10-02T12:00"))
    m.track("2026-10-03T10:00", "Order Completed", user="u1")  # leaves the audience
    world.sync(world.evaluate("2026-10-03T12:00"))
    m.track("2026-10-11T10:00", "Product Added", user="u1")  # enters again
    world.sync(world.evaluate("2026-10-11T12:00"))
    figures = world.sync(world.evaluate("2026-10-12T12:00"))
    assert figures["journey.cart.remind.hook"]["entered"] == 1
    hook = world.servers["hook"]
    assert isinstance(hook, WebhookSandbox)
    tracks = [msg for msg in hook.messages() if msg["type"] == "track"]
    assert len(tracks) == 2 and len({t["messageId"] for t in tracks}) == 2
    assert datetime.fromisoformat(tracks[1]["timestamp"].replace("Z", "+00:00")) == at("2026-10-12T12:00")


def test_consent_decides_who_a_list_target_gets(world: World) -> None:
    world.workspace = world.configure(
        journey_yaml(marketo="{list_id: 78, eligible_when: {trait: marketing_ok}}")
    )
    m = world.messages
    m.identify("2026-10-01T08:00", user="u1", email="ann@example.com", marketing_ok="yes")
    m.identify("2026-10-01T08:00", user="u2", email="bob@example.com")
    m.track("2026-10-01T10:00", "Product Added", user="u1")
    m.track("2026-10-01T10:00", "Product Added", user="u2")
    world.evaluate("2026-10-01T12:00")
    figures = world.sync(world.evaluate("2026-10-02T12:00"))
    assert figures["journey.cart.remind.mkto"]["entered"] == 1
    assert figures["journey.cart.remind.mkto"]["consent_left_out"] == 1
    assert figures["journey.cart.remind.hook"]["entered"] == 2  # event targets take no consent rule
    marketo = world.servers["mkto"]
    assert isinstance(marketo, MarketoSandbox)
    assert marketo.member_emails(78) == {"ann@example.com"}
