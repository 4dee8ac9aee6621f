"""Incremental evaluation equals a full recompute, and DuckDB equals PostgreSQL, on generated data."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.config import Workspace, load_workspace
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events

from .conftest import PG_URL, drop_schemas

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
END = datetime(2026, 11, 1, tzinfo=UTC)
TABLES = ("custom_traits", "computed_traits", "sqlt_ltv_tier", "account_traits", "account_computed_traits")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The sample workspace over a small generated data set (45 days, with malformed lines)."""
    root = tmp_path_factory.mktemp("generated")
    shutil.copytree(SAMPLE, root / "ws", ignore=shutil.ignore_patterns("events", "state"))
    write_events(GeneratorSpec(profiles=200, events=8000, days=45, end=END, seed=11), root / "ws" / "events")
    return load_workspace(root / "ws" / "workspace.yml")


def _copy_without_events(workspace: Workspace, target: Path) -> Workspace:
    shutil.copytree(workspace.resolve_path("."), target, ignore=shutil.ignore_patterns("events", "state"))
    (target / "events").mkdir()
    return load_workspace(target / "workspace.yml")


def _engines(kind: str, tmp_path: Path) -> Iterator[tuple[ComputeEngine, ComputeEngine]]:
    a, b = f"inc_{uuid.uuid4().hex[:8]}", f"full_{uuid.uuid4().hex[:8]}"
    url = f"duckdb:///{tmp_path / 'c.duckdb'}" if kind == "duckdb" else PG_URL
    engines = ComputeEngine(url, a), ComputeEngine(url, b)
    yield engines
    for engine in engines:
        engine.dispose()
    if kind == "postgres":
        drop_schemas(PG_URL, a)
        drop_schemas(PG_URL, b)


def _normal(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


def snapshot(pipeline: ComputePipeline) -> dict[str, list[tuple[Any, ...]]]:
    """Every result table as sorted tuples (floats rounded, lists as tuples)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name in TABLES:
        out[name] = sorted(
            tuple(_normal(v) for v in row.values()) for row in pipeline.table(name).to_pylist()
        )
    out["membership"] = sorted(tuple(r.values()) for r in pipeline.membership().to_pylist())
    out["changes"] = sorted(tuple(r.values()) for r in pipeline.changes().to_pylist())
    out["identities"] = sorted(tuple(r.values()) for r in pipeline.identities().to_pylist())
    out["aliases"] = sorted(tuple(r.values()) for r in pipeline.table("profile_aliases").to_pylist())
    merges = pipeline.table("profile_merges").to_pylist()
    out["merges"] = sorted((m["merged_profile_id"], m["into_profile_id"]) for m in merges)
    out["profiles"] = sorted(tuple(r.values()) for r in pipeline.table("profiles").to_pylist())
    return out


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_incremental_equals_full(generated: Workspace, tmp_path: Path, kind: str) -> None:
    source = generated.resolve_path("events")
    workspace = _copy_without_events(generated, tmp_path / "ws")
    arriving = sorted(source.glob("*.jsonl"))
    for inc_engine, full_engine in _engines(kind, tmp_path):
        incremental, full = ComputePipeline(workspace, inc_engine), ComputePipeline(workspace, full_engine)
        checkpoints = [END - timedelta(days=d) for d in (20, 12.75, 6, 0)]
        for as_of in checkpoints:
            # Files arrive up to as-of (plus one more day, so some events lie in the future); both sides land.
            while arriving and arriving[0].name[:10] <= (as_of + timedelta(days=1)).date().isoformat():
                shutil.copy(arriving.pop(0), workspace.resolve_path("events"))
            for pipeline in (incremental, full):
                pipeline.land()
            inc = incremental.evaluate(as_of)
            full.evaluate(as_of, full=True)
            assert snapshot(incremental) == snapshot(full), as_of
            if as_of != checkpoints[0]:
                assert inc.identity.mode == inc.audiences.mode == "incremental"
                assert 0 < inc.computed.recomputed < inc.identity.profiles
                # The sample's predictive trait is rescored for everyone (recency moves), and an audience
                # uses it: profiles whose score or percentile moved are recomputed too.
                assert inc.audiences.recomputed >= inc.computed.recomputed
        assert any(r.size for r in inc.audiences.audiences)


@pytest.mark.postgres
def test_duckdb_and_postgres_agree(generated: Workspace, tmp_path: Path) -> None:
    duck = ComputePipeline(generated, ComputeEngine(f"duckdb:///{tmp_path / 'd.duckdb'}", "agree"))
    schema = f"agree_{uuid.uuid4().hex[:8]}"
    pg = ComputePipeline(generated, ComputeEngine(PG_URL, schema))
    try:
        results = []
        for pipeline in (duck, pg):
            landed = pipeline.land()
            summaries = [pipeline.evaluate(END - timedelta(days=7)), pipeline.evaluate(END)]
            results.append((landed, summaries, snapshot(pipeline)))
        (d_landed, d_sum, d_snap), (p_landed, p_sum, p_snap) = results
        assert (d_landed.events, d_landed.quarantined, d_landed.reasons) == (
            p_landed.events,
            p_landed.quarantined,
            p_landed.reasons,
        )
        assert d_landed.quarantined > 0
        assert [s.audiences.audiences for s in d_sum] == [s.audiences.audiences for s in p_sum]
        for name in d_snap:
            assert d_snap[name] == p_snap[name], name
    finally:
        duck.close()
        pg.close()
        drop_schemas(PG_URL, schema)
