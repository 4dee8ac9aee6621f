"""Dagster: the serving copy is an asset downstream of traits and audiences, published by the evaluation jobs
with its size and publish time, and the Profile API serves what it published."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import requests

from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.config import load_workspace
from activation_pipeline.config.serving import DEFAULT_TOKEN_ENV
from activation_pipeline.orchestration.headless import definitions_with
from activation_pipeline.orchestration.scope import AS_OF_TAG, Scope
from activation_pipeline.orchestration.workspace import EVALUATE_JOB, LAND_JOB, MAIN_JOB, SAMPLE_WORKSPACE
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events
from activation_pipeline_tests.test_serving.conftest import running

END = datetime(2026, 11, 1, tzinfo=UTC)
SCOPE = Scope("acme-shop")
KEY = SCOPE.key("serving_copy")


def test_serving_copy_is_downstream_of_traits_and_audiences() -> None:
    graph = definitions_with(str(SAMPLE_WORKSPACE)).resolve_asset_graph()
    parents = {"/".join(k.path[1:]) for k in graph.get(KEY).parent_keys}
    assert {
        "custom_traits",
        "sql_traits",
        "traits/total_revenue_180d",
        "audiences/high_value_recent",
    } <= parents
    assert graph.get(KEY).group_name == "acme_shop/serving"
    defs = definitions_with(str(SAMPLE_WORKSPACE))
    for job in (MAIN_JOB, EVALUATE_JOB):
        assert KEY in defs.resolve_job_def(SCOPE.name(job)).asset_layer.executable_asset_keys


def test_the_evaluation_job_publishes_what_the_api_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(
        SAMPLE_WORKSPACE.parent, tmp_path / "ws", ignore=shutil.ignore_patterns("events", "state")
    )
    write_events(GeneratorSpec(profiles=80, events=2000, days=5, end=END, seed=3), tmp_path / "ws" / "events")
    path = str(tmp_path / "ws" / "workspace.yml")
    defs = definitions_with(path)
    with dg.DagsterInstance.ephemeral() as instance:
        assert defs.resolve_job_def(SCOPE.name(LAND_JOB)).execute_in_process(instance=instance).success
        job = defs.resolve_job_def(SCOPE.name(EVALUATE_JOB))
        for expected_version in (1, 2):
            assert job.execute_in_process(instance=instance, tags={AS_OF_TAG: END.isoformat()}).success
            event = instance.get_latest_materialization_event(KEY)
            assert event is not None and event.asset_materialization is not None
            meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
            assert meta["version"] == expected_version
            assert meta["as_of"] == END.isoformat()
            assert isinstance(meta["profiles"], int) and meta["profiles"] > 0
            assert meta["dagster/row_count"] == meta["profiles"]
            assert isinstance(meta["lookup_keys"], int) and meta["lookup_keys"] > meta["profiles"]
            assert str(meta["published_at"]).endswith("Z")

    workspace = load_workspace(path)
    pipeline = ComputePipeline(workspace)
    try:
        identities = [r for r in pipeline.identities().to_pylist() if r["identifier_type"] == "user_id"][:5]
    finally:
        pipeline.close()
    monkeypatch.setenv(DEFAULT_TOKEN_ENV, "sample-token")
    with running(workspace) as server:
        base = f"http://127.0.0.1:{server.config.port}/v1/spaces/{workspace.personas_space_id}"
        for row in identities:
            answer = requests.get(
                f"{base}/collections/users/profiles/user_id:{row['value']}/external_ids",
                auth=("sample-token", ""),
                params={"limit": 100},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            assert ("user_id", row["value"]) in {(d["type"], d["id"]) for d in answer.json()["data"]}
