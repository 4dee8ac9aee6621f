"""The compute assets materialise in Dagster with lineage, metadata and checks: events -> profiles -> traits
(one asset per computed trait) -> one asset per audience, each with its own size, entered, exited and checks."""

import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from activation_pipeline.orchestration.compute_assets import CHECK_SIZE, CHECK_UNIQUE
from activation_pipeline.orchestration.headless import definitions_with
from activation_pipeline.orchestration.scope import AS_OF_TAG, FULL_TAG, Scope
from activation_pipeline.orchestration.workspace import EVALUATE_JOB, LAND_JOB, SAMPLE_WORKSPACE
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events

END = datetime(2026, 11, 1, tzinfo=UTC)
SCOPE = Scope("acme-shop")


@pytest.fixture(scope="module")
def workspace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample workspace over 6 generated days, with its own DuckDB file."""
    root = tmp_path_factory.mktemp("dagster")
    shutil.copytree(SAMPLE_WORKSPACE.parent, root / "ws", ignore=shutil.ignore_patterns("events", "state"))
    write_events(GeneratorSpec(profiles=120, events=3000, days=6, end=END, seed=5), root / "ws" / "events")
    return root / "ws" / "workspace.yml"


def _parents(graph: object, *path: str) -> set[str]:
    node = graph.get(SCOPE.key(*path))  # type: ignore[attr-defined]
    return {"/".join(k.path[1:]) for k in node.parent_keys}


def test_lineage_groups_and_keys() -> None:
    """Keys live under the workspace name; an audience depends on the traits; the config feeds every stage."""
    graph = definitions_with(str(SAMPLE_WORKSPACE)).resolve_asset_graph()
    assert _parents(graph, "events") == {"workspace_config"}
    assert _parents(graph, "profiles") == {"workspace_config", "events"}
    assert _parents(graph, "traits", "favourite_category") == {"workspace_config", "profiles"}
    high_value = _parents(graph, "audiences", "high_value_recent")
    assert {"workspace_config", "custom_traits", "sql_traits", "traits/total_revenue_180d"} <= high_value
    assert graph.get(SCOPE.key("audiences", "high_value_recent")).group_name == "acme_shop/audiences"
    assert graph.get(SCOPE.key("events")).group_name == "acme_shop/ingest"
    checks = {(k.asset_key, k.name) for k in graph.asset_check_keys}
    assert (SCOPE.key("audiences", "vip_loyal"), CHECK_SIZE) in checks
    assert (SCOPE.key("audiences", "vip_loyal"), CHECK_UNIQUE) in checks


def _evaluate(
    defs: dg.Definitions, instance: dg.DagsterInstance, tags: dict[str, str]
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(SCOPE.name(EVALUATE_JOB))
    return job.execute_in_process(instance=instance, tags=tags)


def _audience(result: dg.ExecuteInProcessResult, key: str) -> dict[str, object]:
    [materialisation] = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.step_materialization_data.materialization.asset_key == SCOPE.key("audiences", key)
    ]
    return {name: entry.value for name, entry in materialisation.metadata.items()}


def _checks(result: dg.ExecuteInProcessResult, key: str) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        c.check_name: c
        for c in result.get_asset_check_evaluations()
        if c.asset_key == SCOPE.key("audiences", key)
    }


def test_assets_materialise_with_metadata_and_checks(workspace_file: Path) -> None:
    """Landing counts what is new; each audience gets its figures and checks; the size check flags the one
    that moved; the full tag rebuilds with the same result."""
    defs = definitions_with(str(workspace_file))
    files = len(list((workspace_file.parent / "events").glob("*.jsonl")))
    land = defs.resolve_job_def(SCOPE.name(LAND_JOB))
    with dg.DagsterInstance.ephemeral() as instance:
        assert land.execute_in_process(instance=instance).success
        events = instance.get_latest_materialization_event(SCOPE.key("events"))
        assert events is not None and events.asset_materialization is not None
        meta = events.asset_materialization.metadata
        assert meta["events"].value > 0 and meta["new_sources"].value == files  # type: ignore[operator]
        assert meta["quarantined"].value > 0  # type: ignore[operator]  # the generator writes malformed lines

        first = _evaluate(defs, instance, {AS_OF_TAG: END.isoformat()})
        assert first.success
        cart = _audience(first, "cart_abandoners")
        assert cart["size"] == cart["entered"] and isinstance(cart["size"], int) and cart["size"] > 0
        assert cart["exited"] == 0 and cart["mode"] == "full"
        assert all(c.passed for c in _checks(first, "cart_abandoners").values())

        # Sixty days without new events empties the 7-day audience: flagged on it, the run still succeeds.
        later = _evaluate(defs, instance, {AS_OF_TAG: "2026-12-31T00:00:00+00:00"})
        assert later.success
        size = _checks(later, "cart_abandoners")[CHECK_SIZE]
        assert not size.passed and size.severity == dg.AssetCheckSeverity.WARN
        assert size.metadata["previous_size"].value == cart["size"]
        moved = _audience(later, "cart_abandoners")
        assert moved["size"] == 0 and moved["exited"] == cart["size"] and moved["mode"] == "incremental"

        rebuilt = _evaluate(defs, instance, {AS_OF_TAG: "2026-12-31T00:00:00+00:00", FULL_TAG: "true"})
        again = _audience(rebuilt, "high_value_recent")
        assert again["mode"] == "full" and again["size"] == _audience(later, "high_value_recent")["size"]
