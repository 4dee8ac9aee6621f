"""A sandbox run is isolated from the real workspace: its own compute results, state store and run tags.

One copy of the sample with small generated events: a real evaluation as of 11-01 and its plan, then a sandbox
run as of 10-20 that syncs everything to the fake servers. The real plan afterwards is what it was (same
results time, same adds), the sandbox's plan is its own, the ledger finds a member only with `--sandbox` (and
says so without it), and every sandbox run carries `activation/sandbox=true`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from activation_pipeline.cli import main
from activation_pipeline.config import load_workspace
from activation_pipeline.orchestration.headless import run_pipeline
from activation_pipeline.orchestration.resources import SANDBOX_TAG, ComputeResource, sandbox_resources
from activation_pipeline.sandbox.workspace import SANDBOX_STATE_DIR, sandboxed
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events

REAL_AS_OF = "2026-11-01T00:00:00+00:00"
SANDBOX_AS_OF = datetime(2026, 10, 20, tzinfo=UTC)
SPEC = GeneratorSpec(profiles=150, events=5000, seed=5, end=datetime(2026, 11, 1, tzinfo=UTC), days=60)


def _plan(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["plan", str(path), "--json", *extra]) == 0
    return list(json.loads(capsys.readouterr().out))


def _a_sent_email(path: Path) -> str:
    """An email of a member of high_value_recent in the sandbox's results (sent to Meta by the sandbox)."""
    workspace = load_workspace(path)
    view = ComputeResource(directory=str(path.parent / SANDBOX_STATE_DIR)).results(workspace)
    profiles = view.profiles(sorted(view.members("high_value_recent")))
    return sorted(i.value for p in profiles.values() for i in p.identifiers if i.type == "email")[0]


def test_a_sandbox_run_never_changes_what_the_real_workspace_sends(
    sample_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real plan before == real plan after a sandbox run with another as-of; ledger and plan take --sandbox."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    write_events(SPEC, sample_copy.parent / "events")
    assert main(["run", str(sample_copy), "--no-sync", "--as-of", REAL_AS_OF]) == 0
    out = capsys.readouterr().out
    assert "  landing new events ..." in out and "  evaluated: " in out and "\naudiences\n" in out
    assert "recorded in a throwaway in-memory instance" in out
    real_before = _plan(sample_copy, capsys)
    assert sum(int(str(p["adds"])) for p in real_before) > 0

    with sandboxed(sample_copy) as session, dg.DagsterInstance.ephemeral() as instance:
        summary = run_pipeline(
            str(sample_copy),
            SANDBOX_AS_OF,
            instance,
            resources=sandbox_resources(session),
            tags={SANDBOX_TAG: "true"},
        )
        assert summary.success, summary.failures
        assert session.delivered()["meta_ads"] > 0
        runs = instance.get_runs()
        assert len(runs) == len(summary.run_ids) and all(r.tags.get(SANDBOX_TAG) == "true" for r in runs)

    assert _plan(sample_copy, capsys) == real_before
    capsys.readouterr()
    assert main(["plan", str(sample_copy)]) == 0
    text = capsys.readouterr().out
    assert f"from the results as of {REAL_AS_OF}" in text and "unaddressable" in text.splitlines()[1]

    sandbox_plan = _plan(sample_copy, capsys, "--sandbox")
    assert sum(int(str(p["adds"])) for p in sandbox_plan) == 0  # the sandbox synced everything it evaluated
    capsys.readouterr()
    assert main(["plan", str(sample_copy), "--sandbox"]) == 0
    assert f"from the sandbox's results as of {SANDBOX_AS_OF.isoformat()}" in capsys.readouterr().out

    email = _a_sent_email(sample_copy)
    assert (
        main(["ledger", email, "--workspace", str(sample_copy), "--destination", "meta_ads", "--brief"]) == 1
    )
    out = capsys.readouterr().out
    assert "real deliveries of acme-shop" in out and "unknown identifier" in out
    assert "the sandbox has" in out and "add --sandbox" in out
    assert (
        main(["ledger", email, "--workspace", str(sample_copy), "--destination", "meta_ads", "--sandbox"])
        == 0
    )
    out = capsys.readouterr().out
    assert "sandbox deliveries of acme-shop" in out and "meta_ads" in out and "acknowledged" in out.lower()


def test_sandbox_runs_are_tagged_whoever_launches_them(sample_copy: Path) -> None:
    """The sandbox's state resource tags a run launched without the tag (as the UI's asset graph does)."""
    write_events(SPEC, sample_copy.parent / "events")
    with sandboxed(sample_copy) as session, dg.DagsterInstance.ephemeral() as instance:
        summary = run_pipeline(
            str(sample_copy), SANDBOX_AS_OF, instance, sync=False, resources=sandbox_resources(session)
        )
        assert summary.success, summary.failures
        assert [r.tags.get(SANDBOX_TAG) for r in instance.get_runs()] == ["true", "true"]
    assert not (sample_copy.parent / "state" / "compute.duckdb").exists()
    assert (sample_copy.parent / SANDBOX_STATE_DIR / "acme-shop" / "compute.duckdb").exists()
