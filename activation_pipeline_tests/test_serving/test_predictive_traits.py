"""Predictive traits are served like the others: in `/traits`, and alone with `class=predictive_trait`."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.config.serving import DEFAULT_TOKEN_ENV
from activation_pipeline_tests.test_compute.test_predictive import planted  # noqa: F401 (the fixture)
from activation_pipeline_tests.test_serving.conftest import running


def test_scores_and_percentiles_are_served(
    planted: tuple[ComputePipeline, Any],  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline, _ = planted
    scores = [r for r in pipeline.table("predictive_traits").to_pylist() if r["purchase_score"] is not None][
        :5
    ]
    assert scores
    monkeypatch.setenv(DEFAULT_TOKEN_ENV, "token-p")
    with running(pipeline.workspace) as server:
        base = f"http://127.0.0.1:{server.config.port}/v1/spaces/{pipeline.workspace.personas_space_id}"
        for row in scores:
            url = f"{base}/collections/users/profiles/use_{row['profile_id']}/traits"
            only = requests.get(url, params={"class": "predictive_trait"}, auth=("token-p", ""), timeout=10)
            assert only.status_code == 200, only.text
            assert only.json()["traits"] == pytest.approx(
                {
                    "purchase_score": row["purchase_score"],
                    "purchase_score_percentile": row["purchase_score_percentile"],
                }
            )
            every = requests.get(url, params={"limit": 200}, auth=("token-p", ""), timeout=10).json()[
                "traits"
            ]
            assert every["purchase_score"] == pytest.approx(row["purchase_score"])
