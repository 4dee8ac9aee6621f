"""The instance settings the pipeline relies on, written into `$DAGSTER_HOME/dagster.yaml` whatever that is.

Dagster reads `./dagster.yaml` only when `DAGSTER_HOME` is unset; once it is set, only `$DAGSTER_HOME/dagster.yaml`
counts. So the settings are merged into that file (its storage and other keys kept) by `activation-pipeline
instance`, by `activation-pipeline ui` before it starts the UI, and checked by `run` before it records there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from activation_pipeline.orchestration.scope import RESYNC_WORKSPACE_TAG

RESYNC_LIMIT: dict[str, Any] = {
    "key": RESYNC_WORKSPACE_TAG,
    "value": {"applyLimitPerUniqueValue": True},
    "limit": 1,
}
"""At most one resync run in progress per workspace (the resync sensor enforces the same rule first)."""
MAX_CONCURRENT_RUNS = 10


def instance_file(home: str | Path | None = None) -> Path:
    """`<home>/dagster.yaml`, by default `$DAGSTER_HOME/dagster.yaml` (ValueError when DAGSTER_HOME is unset)."""
    folder = home or os.environ.get("DAGSTER_HOME")
    if not folder:
        raise ValueError("DAGSTER_HOME is not set: give the instance folder")
    return Path(folder).expanduser().resolve() / "dagster.yaml"


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a mapping of instance settings")
    return loaded


def missing_settings(settings: dict[str, Any]) -> list[str]:
    """What the pipeline needs that the instance settings lack, one sentence each (empty: all there)."""
    problems = []
    runs = (settings.get("concurrency") or {}).get("runs") or {}
    if RESYNC_LIMIT not in (runs.get("tag_concurrency_limits") or []):
        problems.append(
            f"no run-queue limit of one run per '{RESYNC_WORKSPACE_TAG}' value (resyncs would not queue)"
        )
    if (settings.get("telemetry") or {}).get("enabled") is not False:
        problems.append("telemetry is not turned off")
    return problems


def check_instance(home: str | Path | None = None) -> list[str]:
    """What `<home>/dagster.yaml` lacks (a missing file lacks everything)."""
    return missing_settings(_read(instance_file(home)))


def with_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings with the resync limit and telemetry off merged in; every other key kept as it was."""
    merged = dict(settings)
    concurrency = dict(merged.get("concurrency") or {})
    runs = dict(concurrency.get("runs") or {})
    limits = [
        limit
        for limit in runs.get("tag_concurrency_limits") or []
        if not (isinstance(limit, dict) and limit.get("key") == RESYNC_WORKSPACE_TAG)
    ]
    runs["tag_concurrency_limits"] = [*limits, RESYNC_LIMIT]
    runs.setdefault("max_concurrent_runs", MAX_CONCURRENT_RUNS)
    concurrency["runs"] = runs
    merged["concurrency"] = concurrency
    merged["telemetry"] = {**(merged.get("telemetry") or {}), "enabled": False}
    return merged


def write_instance_settings(home: str | Path | None = None) -> tuple[Path, list[str]]:
    """Merge the pipeline's settings into `<home>/dagster.yaml` (created if missing); the file and what was fixed."""
    path = instance_file(home)
    current = _read(path)
    fixed = missing_settings(current)
    if fixed:
        path.parent.mkdir(parents=True, exist_ok=True)
        header = (
            "# Instance settings; activation-pipeline keeps its resync limit and telemetry off in here.\n"
        )
        path.write_text(header + yaml.safe_dump(with_settings(current), sort_keys=False), encoding="utf-8")
    return path, fixed
