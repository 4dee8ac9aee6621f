"""A serving version written incrementally (the previous one with the recomputed profiles replaced) holds the
same rows as the same version built whole, through merges, late events and events leaving the window."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
import yaml

from activation_pipeline.compute import state
from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.config import Workspace, load_workspace
from activation_pipeline.serving import publish
from activation_pipeline.serving.layout import serving_tables, table_prefix
from activation_pipeline.serving.publish import (
    current_version,
    publish_serving_copy,
    read_pointer_file,
    serving_directory,
)
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events
from activation_pipeline_tests.test_compute.conftest import PG_URL, drop_schemas

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


def _plain(value: Any) -> Any:
    """A document's JSON with its arrays and objects in one order (the aggregates that build them keep none)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return sorted((_plain(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return value


def _normal(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_plain(json.loads(v)) if isinstance(v, str) and v.startswith("{") else v for v in row)


def _rows(pipeline: ComputePipeline) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the current version's tables, sorted (documents parsed, in one order)."""
    engine, workspace = pipeline.engine, pipeline.workspace
    with engine.begin() as conn:
        version = current_version(conn, engine, workspace)
    found: dict[str, list[tuple[Any, ...]]] = {}
    if engine.is_duckdb:
        pointer = read_pointer_file(serving_directory(workspace))
        assert pointer is not None
        with duckdb.connect(str(serving_directory(workspace) / str(pointer["file"])), read_only=True) as db:
            found = {name: db.sql(f"SELECT * FROM {name}").fetchall() for name in TABLES}
    else:
        tables = serving_tables(version, engine.schema, table_prefix(version, on_duckdb=False))
        with engine.begin() as conn:
            found = {
                name: [tuple(r) for r in conn.execute(sa.select(getattr(tables, name)))] for name in TABLES
            }
    return {name: sorted((_normal(r) for r in rows), key=repr) for name, rows in found.items()}


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_incremental_versions_equal_whole_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    workspace = _workspace(tmp_path)
    arriving = sorted((tmp_path / "arriving").glob("*.jsonl"))
    schema = f"pub_{uuid.uuid4().hex[:8]}"
    engine = ComputeEngine(f"duckdb:///{tmp_path / 'c.duckdb'}" if kind == "duckdb" else PG_URL, schema)
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
            written = _rows(pipeline)
            with engine.begin() as conn:
                state.set_flag(conn, engine.tables, state.SERVING_NEEDS_FULL, True)
            whole = publish_serving_copy(engine, workspace, as_of.replace(tzinfo=None))
            assert whole.mode == "full"
            assert _rows(pipeline) == written, as_of
            assert written["profiles"] and written["events"] and written["lookup"]
        assert modes == ["full", "incremental", "incremental", "incremental"]
        if (
            kind == "duckdb"
        ):  # a file grown past REBUILD_GROWTH times the last whole build is built whole again
            monkeypatch.setattr(publish, "REBUILD_GROWTH", 0.5)
            assert pipeline.evaluate(END + timedelta(hours=1)).serving.mode == "full"
    finally:
        pipeline.close()
        if kind == "postgres":
            drop_schemas(PG_URL, schema)
