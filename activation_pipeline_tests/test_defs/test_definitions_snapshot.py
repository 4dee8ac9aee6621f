"""The code location's graph, pinned: every change to assets, deps, groups, jobs, schedules, sensors or
partitions shows in review as a diff of `definitions_snapshot.json`.

After an intended change, regenerate the file and commit it with the change:

    UPDATE_SNAPSHOT=1 .venv/bin/pytest activation_pipeline_tests/test_defs/test_definitions_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from activation_pipeline import definitions
from activation_pipeline.orchestration.workspace import WORKSPACE_ENV

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
UPDATE_ENV = "UPDATE_SNAPSHOT"


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return f"dynamic:{partitions_def.name}"
    return type(partitions_def).__name__


def describe(defs: dg.Definitions) -> dict[str, Any]:
    """Assets (group, kinds, deps, partitions, checks), jobs (assets or ops, tags), schedules and sensors."""
    repository = defs.get_repository_def()
    graph = repository.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitions": _partitions(node.partitions_def),
            "checks": sorted(check.name for check in node.check_keys),
        }
    jobs = {}
    for job in sorted(repository.get_all_jobs(), key=lambda j: j.name):
        if job.name.startswith("__"):  # Dagster's implicit asset jobs
            continue
        selected = sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)
        jobs[job.name] = {
            "assets": selected,
            "ops": [] if selected else sorted(node.name for node in job.graph.node_defs),
            "tags": dict(sorted(job.tags.items())),
        }
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name, "default_status": s.default_status.value}
        for s in sorted(repository.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        s.name: {
            "jobs": sorted(j.name for j in s.jobs) if s.has_jobs else [],
            "default_status": s.default_status.value,
        }
        for s in sorted(repository.sensor_defs, key=lambda s: s.name)
    }
    return {"assets": assets, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def test_definitions_match_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The code location's graph equals the checked-in snapshot (regenerate it with UPDATE_SNAPSHOT=1)."""
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)  # the sample, whatever the developer's environment
    defs = dg.load_from_defs_folder(path_within_project=Path(definitions.__file__).parent)
    current = json.dumps(describe(defs), indent=2, sort_keys=False) + "\n"
    if os.environ.get(UPDATE_ENV):
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), f"no snapshot yet: run with {UPDATE_ENV}=1 to write {SNAPSHOT.name}"
    assert current == SNAPSHOT.read_text(), (
        f"the Dagster definitions changed; if intended, run with {UPDATE_ENV}=1 and commit {SNAPSHOT.name}"
    )
