"""A serving version written incrementally (the previous one with the recomputed profiles replaced) holds the
same rows as the same version built whole, through merges, late events and events leaving the window."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from activation_pipeline.compute import state
from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.config import Workspace, load_workspace
from activation_pipeline.serving import publish
from activation_pipeline.serving.publish import publish_serving_copy, read_pointer_file, serving_directory
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "workspace.yml"
END = datetime(2026, 11, 1, tzinfo=UTC)
TABLES = ("lookup", "profiles", "accounts", "events")


def _workspace(root: Path) -> Workspace:
    """The sample's identity, traits and audiences without its predictive trait (rescoring rewrites every
    document), over generated events: 200 people, 45 days, with merges and malformed lines."""
    sample = yaml.safe_load(SAMPLE.read_text())
    traits = {k: v for k, v in sample["traits"].items() if k != "predictive"}
    audiences = [a for a in sample["audiences"] if "purchase_likelihood" not in str(a["where"])]
    kept = {k: sample[k] for k in ("workspace", "identity", "normalisation") if k in sample}
    document = {
        **kept,
        "sources": {"events": {"path": "events/"}},
        "traits": traits,
        "audiences": audiences,
        "serving": {"events_days": 7},
    }
    (root / "events").mkdir(parents=True)
    shutil.copytree(SAMPLE.parent / "sql", root / "sql")
    (root / "workspace.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    write_events(GeneratorSpec(profiles=200, events=8000, days=45, end=END, seed=11), root / "arriving")
    return load_workspace(root / "workspace.yml")


def _rows(workspace: Workspace) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the current version's tables, sorted."""
    pointer = read_pointer_file(serving_directory(workspace))
    assert pointer is not None
    with duckdb.connect(str(serving_directory(workspace) / str(pointer["file"])), read_only=True) as db:
        return {name: sorted(db.sql(f"SELECT * FROM {name}").fetchall()) for name in TABLES}


def test_incremental_versions_equal_whole_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = _workspace(tmp_path)
    arriving = sorted((tmp_path / "arriving").glob("*.jsonl"))
    engine = ComputeEngine(f"duckdb:///{tmp_path / 'c.duckdb'}", "pub")
    pipeline = ComputePipeline(workspace, engine)
    modes = []
    try:
        for as_of in [END - timedelta(days=d) for d in (20, 12.75, 6, 0)]:
            # Files arrive up to a day past as-of (some events lie ahead); the first of them late, one day back.
            while arriving and arriving[0].name[:10] <= (as_of + timedelta(days=1)).date().isoformat():
                shutil.copy(arriving.pop(0), workspace.resolve_path("events"))
            pipeline.land()
            summary = pipeline.evaluate(as_of)
            modes.append(summary.serving.mode)
            written = _rows(workspace)
            with engine.begin() as conn:
                state.set_flag(conn, engine.tables, state.SERVING_NEEDS_FULL, True)
            whole = publish_serving_copy(engine, workspace, as_of.replace(tzinfo=None))
            assert whole.mode == "full"
            assert _rows(workspace) == written, as_of
            assert written["profiles"] and written["events"] and written["lookup"]
        assert modes == ["full", "incremental", "incremental", "incremental"]
        # A file grown past REBUILD_GROWTH times the last whole build is built whole again.
        monkeypatch.setattr(publish, "REBUILD_GROWTH", 0.5)
        assert pipeline.evaluate(END + timedelta(hours=1)).serving.mode == "full"
    finally:
        pipeline.close()
