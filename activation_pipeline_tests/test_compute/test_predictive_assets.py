"""The predictive trait's Dagster assets: a model asset with its held-out figures (reused until its retrain age,
retrained with the run tag) and a scores asset upstream of the audiences and syncs that use the trait."""

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from activation_pipeline.orchestration.headless import definitions_with
from activation_pipeline.orchestration.predictive_assets import RETRAIN_TAG
from activation_pipeline.orchestration.scope import AS_OF_TAG, Scope
from activation_pipeline.orchestration.workspace import EVALUATE_JOB, LAND_JOB, SAMPLE_WORKSPACE
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events

END = datetime(2026, 11, 1, tzinfo=UTC)
SCOPE = Scope("acme-shop")
MODEL = SCOPE.key("models", "purchase_likelihood_30d")
SCORES = SCOPE.key("traits", "purchase_likelihood_30d")


@pytest.fixture(scope="module")
def workspace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample workspace over 60 generated days."""
    root = tmp_path_factory.mktemp("predictive_dagster")
    shutil.copytree(SAMPLE_WORKSPACE.parent, root / "ws", ignore=shutil.ignore_patterns("events", "state"))
    write_events(GeneratorSpec(profiles=400, events=16_000, days=60, end=END, seed=5), root / "ws" / "events")
    return root / "ws" / "workspace.yml"


def _metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, object]:
    [materialisation] = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.step_materialization_data.materialization.asset_key == key
    ]
    return {k: getattr(v, "value", v) for k, v in materialisation.metadata.items()}


def _observed(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> list[dict[str, object]]:
    return [
        {k: getattr(v, "value", v) for k, v in e.asset_observation_data.asset_observation.metadata.items()}
        for e in result.get_asset_observation_events()
        if e.asset_observation_data.asset_observation.asset_key == key
    ]


def _materialised(result: dg.ExecuteInProcessResult) -> set[dg.AssetKey]:
    return {
        e.step_materialization_data.materialization.asset_key
        for e in result.get_asset_materialization_events()
    }


def test_model_and_scores_assets(workspace_file: Path) -> None:
    """Lineage, the model's figures as metadata (materialised once per trained model, so Dagster plots one point
    per model), an observation when a run reuses the model within its retrain age, and retraining on request."""
    defs = definitions_with(str(workspace_file))
    graph = defs.resolve_asset_graph()
    assert MODEL in graph.get(SCORES).parent_keys
    assert SCORES in graph.get(SCOPE.key("audiences", "likely_buyers")).parent_keys
    assert SCORES in graph.get(SCOPE.key("sync", "braze")).parent_keys  # enriches cart_abandoners' messages
    job = defs.resolve_job_def(SCOPE.name(EVALUATE_JOB))
    with dg.DagsterInstance.ephemeral() as instance:
        assert defs.resolve_job_def(SCOPE.name(LAND_JOB)).execute_in_process(instance=instance).success
        first = job.execute_in_process(instance=instance, tags={AS_OF_TAG: END.isoformat()})
        later = (END + timedelta(days=1)).isoformat()
        reused = job.execute_in_process(instance=instance, tags={AS_OF_TAG: later})
        asked = job.execute_in_process(instance=instance, tags={AS_OF_TAG: later, RETRAIN_TAG: "true"})
    model = _metadata(first, MODEL)
    assert model["retrained"] is True, model
    assert 0.5 < float(model.get("auc", 0)) <= 1.0, model  # type: ignore[arg-type]
    assert int(model["training_rows"]) > 100 and int(model["test_rows"]) > 20  # type: ignore[call-overload]
    assert 0 < float(model["base_rate"]) < 1  # type: ignore[arg-type]
    assert 0 <= float(model["calibration_gap"]) < 0.2  # type: ignore[arg-type]
    assert isinstance(model["training_rows"], int) and isinstance(model["auc"], float)  # plotted numbers
    assert len(model["calibration"].records) == 10  # type: ignore[attr-defined]
    assert model["importances"].records  # type: ignore[attr-defined]
    assert _metadata(first, SCORES)["scored_profiles"] == _metadata(first, SCORES)["dagster/row_count"]
    assert MODEL not in _materialised(reused) and SCORES in _materialised(reused)
    [observed] = _observed(reused, MODEL)
    assert observed["retrained"] is False and observed["trained_as_of"] == model["trained_as_of"]
    assert observed["model_age_days"] == 1.0
    assert _metadata(asked, MODEL)["retrained"] is True
    assert not _observed(first, MODEL) and not _observed(asked, MODEL)
