"""The compute assets materialise in Dagster with lineage, metadata and checks (events -> ... -> audiences)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from activation_pipeline.defs.compute_assets import (
    CHECK_SIZE,
    CHECK_UNIQUE,
    COMPUTE_ASSETS,
    FULL_TAG,
    audiences,
    compute_definitions,
    events,
)
from activation_pipeline.defs.resources import AS_OF_TAG, WorkspaceResource
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
END = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def workspace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample workspace over 6 generated days, with its own DuckDB file."""
    root = tmp_path_factory.mktemp("dagster")
    shutil.copytree(SAMPLE, root / "ws", ignore=shutil.ignore_patterns("events", "state"))
    write_events(GeneratorSpec(profiles=120, events=3000, days=6, end=END, seed=5), root / "ws" / "events")
    return root / "ws" / "workspace.yml"


def test_definitions_load_with_lineage_and_groups() -> None:
    resources = {"workspace": WorkspaceResource(path=str(SAMPLE / "workspace.yml"))}
    defs = compute_definitions()
    dg.Definitions.validate_loadable(dg.Definitions.merge(defs, dg.Definitions(resources=resources)))
    assert {job.name for job in defs.jobs or []} == {"compute_land_events", "compute_evaluate"}  # type: ignore[union-attr]
    graph = dg.Definitions(assets=COMPUTE_ASSETS, resources=resources).resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"events", "profiles", "custom_traits", "computed_traits", "sql_traits", "audiences"}
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("audiences")).parent_keys}
    assert parents == {"custom_traits", "computed_traits", "sql_traits"}
    assert {k.to_user_string() for k in graph.get(dg.AssetKey("profiles")).parent_keys} == {"events"}
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert (
        groups["events"] == "ingest"
        and groups["profiles"] == "identity"
        and groups["audiences"] == "audiences"
    )


def _evaluate(
    instance: dg.DagsterInstance, resources: dict[str, object], as_of: datetime
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        COMPUTE_ASSETS,
        selection=[a.key for a in COMPUTE_ASSETS if a is not events],
        resources=resources,
        instance=instance,
        tags={AS_OF_TAG: as_of.isoformat()},
    )


def test_assets_materialise_with_metadata_and_checks(workspace_file: Path) -> None:
    resources = {"workspace": WorkspaceResource(path=str(workspace_file))}
    files = len(list((workspace_file.parent / "events").glob("*.jsonl")))
    with dg.instance_for_test() as instance:
        result = dg.materialize([events], resources=resources, instance=instance)
        landed = result.asset_materializations_for_node("events")[0].metadata
        assert landed["events"].value > 0 and landed["new_sources"].value == files
        assert landed["quarantined"].value > 0  # the generator writes some malformed lines
        again = dg.materialize([events], resources=resources, instance=instance)
        unchanged = again.asset_materializations_for_node("events")[0].metadata
        assert (unchanged["events"].value, unchanged["quarantined"].value) == (0, 0)
        assert unchanged["unchanged_sources"].value == files
        first = _evaluate(instance, resources, END)
        assert first.success
        meta = first.asset_materializations_for_node("audiences")[0].metadata
        assert {"high_value_recent/size", "cart_abandoners/entered", "new_signups/exited"} <= set(meta)
        assert meta["cart_abandoners/size"].value == meta["cart_abandoners/entered"].value > 0
        checks = {c.check_name: c for c in first.get_asset_check_evaluations()}
        assert checks[CHECK_UNIQUE].passed and checks[CHECK_SIZE].passed
        profiles_meta = first.asset_materializations_for_node("profiles")[0].metadata
        assert profiles_meta["profiles"].value > 0 and profiles_meta["mode"].value == "full"

        # Sixty days without new events empties the 7-day audiences: flagged as a warning, run still succeeds.
        later = _evaluate(instance, resources, datetime(2026, 12, 31, tzinfo=UTC))
        assert later.success
        checks = {c.check_name: c for c in later.get_asset_check_evaluations()}
        size = checks[CHECK_SIZE]
        assert not size.passed and size.severity == dg.AssetCheckSeverity.WARN
        assert "cart_abandoners" in size.metadata["flagged"].value
        meta = later.asset_materializations_for_node("audiences")[0].metadata
        assert meta["cart_abandoners/size"].value == 0
        assert meta["mode"].value == "incremental"

        # The activation/full tag forces a rebuild, with the same result.
        rebuilt = dg.materialize(
            COMPUTE_ASSETS,
            selection=[a.key for a in COMPUTE_ASSETS if a is not events],
            resources=resources,
            instance=instance,
            tags={AS_OF_TAG: "2026-12-31T00:00:00+00:00", FULL_TAG: "true"},
        )
        again = rebuilt.asset_materializations_for_node("audiences")[0].metadata
        assert again["mode"].value == "full"
        assert {k: v.value for k, v in again.items() if k.endswith("/size")} == {
            k: v.value for k, v in meta.items() if k.endswith("/size")
        }
    assert audiences.check_specs
