"""Issue #11 on the sync path: consent per member (never added without it, removed when revoked, counted)
and membership upkeep (`refresh_after`: held members sent again, spread over runs, shown by `plan`).

The sample workspace on generated events, synced to the fake Google Ads and Meta servers over real HTTP.
`plan` (basic, pro, enterprise) stands in for a consent trait: which values grant consent is configurable.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from activation_pipeline.config import Workspace, load_workspace
from activation_pipeline.destinations.registry import CATALOGUE
from activation_pipeline.sandbox.base import SandboxServer
from activation_pipeline.state.schema import sync_snapshots
from activation_pipeline.state.snapshots import baseline, read_snapshot
from activation_pipeline.state.store import StateStore, open_state
from activation_pipeline.sync.compute_view import ResultsView
from activation_pipeline.sync.delta import SyncMode
from activation_pipeline.sync.plan import PlanSummary, due_for_refresh, plan_connection
from activation_pipeline.sync.runner import DestinationSync, sync_destination_of_workspace
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events
from activation_pipeline_tests.test_sync.test_plan_equals_sent import END, NO_WAIT, Sample, _secret_names

GOOGLE = "audience.high_value_recent.google_ads"
META = "audience.high_value_recent.meta_ads"
GOOGLE_CONSENT = {
    "ad_user_data": {"trait": "plan", "granted": ["pro", "enterprise"]},
    "ad_personalization": {"trait": "plan", "granted": ["enterprise"]},
}


class Upkeep(Sample):
    """The sample with only its two high_value_recent list connections, and their fake servers by id."""

    def __init__(
        self, root: Path, workspace: Workspace, store: Any, servers: dict[str, SandboxServer]
    ) -> None:
        super().__init__(root, workspace, store)
        self.servers = servers
        self.view: ResultsView | None = None

    def with_settings(self, connection_id: str, **settings: Any) -> None:
        """Change one connection's settings (the destinations stay on their fake servers)."""
        connections = [
            c.model_copy(update={"settings": {**c.settings, **settings}})
            if c.connection_id == connection_id
            else c
            for c in self.workspace.connections
        ]
        base = self.workspace.base_dir
        self.workspace = self.workspace.model_copy(update={"connections": connections}).with_base_dir(base)

    def plan(self, connection_id: str) -> PlanSummary:
        assert self.view is not None
        connection = next(c for c in self.workspace.connections if c.connection_id == connection_id)
        return plan_connection(
            self.store, self.view, self.workspace, connection, self.view.as_of, SyncMode.INCREMENTAL
        )

    def sync(self, destination_id: str, sync_id: str) -> DestinationSync:
        assert self.view is not None
        result = sync_destination_of_workspace(
            self.store,
            self.view,
            self.workspace,
            destination_id,
            self.view.as_of,
            mode=SyncMode.INCREMENTAL,
            sync_id=sync_id,
            retry=NO_WAIT,
            limiter_factory=lambda _store, _destination: None,
        )
        assert result.report is not None and (result.report.failed, result.report.deferred) == (0, 0)
        return result

    def age_snapshot(self, connection_id: str, days: float) -> None:
        """Pretend the connection's members were last acknowledged `days` ago."""
        with self.store.write() as db:
            db.execute(
                sa.update(sync_snapshots)
                .where(sync_snapshots.c.connection_id == connection_id)
                .values(updated_at=datetime.now(UTC) - timedelta(days=days))
            )

    def held(self, connection_id: str) -> set[str]:
        return {s for s, v in read_snapshot(self.store, connection_id).items() if v is True}

    def plans_of(self, subjects: set[str]) -> dict[str, Any]:
        assert self.view is not None
        profiles = self.view.profiles(sorted(subjects))
        return {s: profiles[s].traits.get("plan") if s in profiles else None for s in subjects}


@pytest.fixture(scope="module")
def upkeep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upkeep]:
    root = tmp_path_factory.mktemp("upkeep") / "sample"
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "data" / "sample",
        root,
        ignore=shutil.ignore_patterns("events", "state"),
    )
    document = yaml.safe_load((root / "workspace.yml").read_text())
    kept = [c for c in document["connections"] if c["source"] == "audience:high_value_recent"]
    kept = [c for c in kept if c["destination"] in ("google_ads", "meta_ads")]
    document["connections"] = kept
    (root / "workspace.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    write_events(
        GeneratorSpec(profiles=300, events=20_000, seed=5, end=END + timedelta(days=10), days=25),
        root / "events",
    )
    loaded = load_workspace(root / "workspace.yml")
    with pytest.MonkeyPatch.context() as env, ExitStack() as stack:
        for name in set(_secret_names(document)):
            env.setenv(name, f"sandbox-{name.lower()}")
        servers: dict[str, SandboxServer] = {}
        destinations = []
        for d in loaded.destinations:
            start = CATALOGUE[d.type].fake
            if d.id not in ("google_ads", "meta_ads") or start is None:
                destinations.append(d)
                continue
            server, url = start(d.settings, lambda name, d=d: os.environ[getattr(d.settings, name).env])
            stack.callback(server.stop)
            servers[d.id] = server
            destinations.append(
                d.model_copy(update={"settings": d.settings.model_copy(update={"base_url": url})})
            )
        workspace = loaded.model_copy(update={"destinations": destinations}).with_base_dir(loaded.base_dir)
        store = open_state(root / "state" / "upkeep.db")
        try:
            sample = Upkeep(root, workspace, store, servers)
            sample.view = sample.evaluate(END)
            yield sample
        finally:
            store.dispose()


def test_google_members_need_consent_and_carry_it(upkeep: Upkeep) -> None:
    upkeep.with_settings(GOOGLE, consent=GOOGLE_CONSENT)
    assert upkeep.view is not None
    members = set(upkeep.view.members("high_value_recent"))
    plans = upkeep.plans_of(members)
    consenting = {s for s, p in plans.items() if p in ("pro", "enterprise")}
    assert consenting and consenting != members  # the sample has both kinds
    plan = upkeep.plan(GOOGLE)
    assert plan.consent_left_out == len(members - consenting)
    result = upkeep.sync("google_ads", "consent-1")
    figures = result.connections[GOOGLE]
    assert figures["consent_left_out"] == plan.consent_left_out
    assert upkeep.held(GOOGLE) <= consenting  # nobody without consent was added
    fake: Any = upkeep.servers["google_ads"]
    consents = [c for request in fake.ingested for c in request["consents"]]
    assert consents and all(c["adUserData"] == "CONSENT_GRANTED" for c in consents)
    personalisation = sorted(c["adPersonalization"] for c in consents)
    enterprise = sum(1 for s in upkeep.held(GOOGLE) if plans[s] == "enterprise")
    assert personalisation.count("CONSENT_GRANTED") == enterprise
    assert fake.violations == []


def test_revoked_consent_removes_the_member(upkeep: Upkeep) -> None:
    held = upkeep.held(GOOGLE)
    plans = upkeep.plans_of(held)
    revoked = {s for s in held if plans[s] == "pro"}
    assert revoked, "the sample should hold pro members"
    narrower = {**GOOGLE_CONSENT, "ad_user_data": {"trait": "plan", "granted": ["enterprise"]}}
    upkeep.with_settings(GOOGLE, consent=narrower)
    plan = upkeep.plan(GOOGLE)
    assert (plan.adds, plan.removes) == (0, len(revoked))
    upkeep.sync("google_ads", "consent-2")
    assert upkeep.held(GOOGLE) == held - revoked


def test_meta_takes_an_eligibility_condition(upkeep: Upkeep) -> None:
    condition = {"trait": "plan", "granted": ["enterprise"]}
    upkeep.with_settings(META, eligible_when=condition)
    plan = upkeep.plan(META)
    assert plan.consent_left_out > 0 and plan.adds > 0
    result = upkeep.sync("meta_ads", "eligible-1")
    assert result.connections[META]["consent_left_out"] == plan.consent_left_out
    held = upkeep.held(META)
    assert held and set(upkeep.plans_of(held).values()) == {"enterprise"}


def test_members_last_sent_long_ago_are_refreshed(upkeep: Upkeep) -> None:
    held = upkeep.held(GOOGLE)
    assert held
    assert upkeep.plan(GOOGLE).refreshes == 0  # just sent: nothing due
    upkeep.age_snapshot(GOOGLE, 200)  # refresh_after defaults to 180d for Google
    plan = upkeep.plan(GOOGLE)
    assert (plan.adds, plan.removes, plan.refreshes, plan.records) == (0, 0, len(held), len(held))
    fake: Any = upkeep.servers["google_ads"]
    before = len(fake.ingested)
    result = upkeep.sync("google_ads", "refresh-1")
    assert result.connections[GOOGLE]["refreshed"] == len(held)
    assert sum(r["members"] for r in fake.ingested[before:]) == len(held)
    assert upkeep.plan(GOOGLE).refreshes == 0  # acknowledged again: not due any more


def test_refresh_switched_off(upkeep: Upkeep) -> None:
    upkeep.age_snapshot(GOOGLE, 400)
    assert upkeep.plan(GOOGLE).refreshes == len(upkeep.held(GOOGLE))
    upkeep.with_settings(GOOGLE, refresh_after=None)
    assert upkeep.plan(GOOGLE).refreshes == 0


def test_refreshes_are_spread_over_runs(store: StateStore) -> None:
    """Members acknowledged together come due over the last quarter of `refresh_after`, a few each day."""
    subjects = [f"p{i:05d}" for i in range(2_000)]
    baseline(store, "c1", "google_ads", ((s, True) for s in subjects), "sync_0")
    baseline(store, "c1", "google_ads", [("p99999", False)], "sync_0")  # not held: never refreshed
    sent = datetime.now(UTC) - timedelta(days=1)
    with store.write() as db:
        db.execute(sa.update(sync_snapshots).values(updated_at=sent))
    period = timedelta(days=100)
    by_day = [
        len(list(due_for_refresh(store, "c1", period, sent + timedelta(days=d)))) for d in range(70, 102)
    ]
    assert by_day[:5] == [0] * 5  # nothing before 75 days
    assert by_day[-1] == len(subjects)  # everyone by 100 days
    daily = [b - a for a, b in pairwise(by_day)]
    assert max(daily) < len(subjects) * 0.08  # about 1/25 a day over the 25 days, never a spike
    assert list(due_for_refresh(store, "c1", period, sent + timedelta(days=101))) == subjects  # key order
