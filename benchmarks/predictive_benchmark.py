"""Predictive traits at scale: training and scoring one likelihood model over N profiles (default 1M).

The events (about 20 per profile over 120 days, with a planted signal: a hidden propensity drives both
"Wishlist Added" and "Order Completed") and the resolved profiles are written straight into a DuckDB compute
schema by SQL, so the figure is the predictive stage alone: features in SQL as of the cutoff and as of now,
labels, training on at most `max_training_rows` profiles, held-out evaluation, scoring everyone and writing the
scores with their percentiles. Each phase runs in a fresh process (wall time and peak RSS are its own).

    .venv/bin/python benchmarks/predictive_benchmark.py --profiles 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from phases import run_phase

AS_OF = datetime(2026, 11, 1)
DAYS = 120
EVENTS = ("Product Viewed", "Product Added", "Cart Viewed", "Signed In", "Email Opened", "Wishlist Added")
WORKSPACE = """
workspace: bench
sources: {events: {path: events/}}
compute: {engine: duckdb, path: compute.duckdb, memory_limit: 1GB}
traits:
  predictive:
    - {key: purchase, shortcut: likelihood_to_purchase}
"""


def _workspace(root: Path) -> Any:
    from activation_pipeline.config import validate_text

    (root / "workspace.yml").write_text(WORKSPACE)
    workspace, problems = validate_text(WORKSPACE, base_dir=root)
    assert workspace is not None, problems
    return workspace


def _phase_setup(root: str, profiles: int) -> dict[str, Any]:
    """Events, identity sets, profiles and the identity watermark, in SQL."""
    import sqlalchemy as sa

    from activation_pipeline.compute import state
    from activation_pipeline.compute.engine import ComputeEngine
    from activation_pipeline.compute.event_columns import EventColumn

    workspace = _workspace(Path(root))
    engine = ComputeEngine.for_workspace(workspace)
    revenue = EventColumn("properties", "revenue", "number").name
    names = ", ".join(f"'{e}'" for e in EVENTS)
    start = f"TIMESTAMP '{AS_OF.isoformat()}' - INTERVAL {DAYS} DAY"
    with engine.begin() as conn:
        schema = engine.schema
        conn.exec_driver_sql(f"ALTER TABLE {schema}.events ADD COLUMN {revenue} DOUBLE")
        conn.exec_driver_sql(
            f"""CREATE TEMP TABLE people AS SELECT range AS pid, random() AS propensity,
                1 + floor(-ln(random()) * 18)::INT AS n FROM range({profiles})"""
        )
        # Each person's events: ordinary activity, wishlists and orders rising with the hidden propensity.
        conn.exec_driver_sql(
            f"""INSERT INTO {schema}.events (message_id, type, event, user_id, timestamp, source, line, batch,
                    set_hash, {revenue})
                SELECT 'm' || pid || '_' || k, 'track',
                    CASE WHEN r < 0.04 * propensity * propensity + 0.005 THEN 'Order Completed'
                         WHEN r < 0.12 * propensity THEN 'Wishlist Added'
                         ELSE ([{names}])[1 + (hash(pid, k) % {len(EVENTS) - 1})::INT] END,
                    'u' || pid, {start} + to_microseconds((random() * {DAYS} * 86400e6)::BIGINT),
                    'bench', k, 1, pid, CASE WHEN r < 0.04 * propensity * propensity + 0.005
                        THEN round(20 + random() * 200, 2) END
                FROM (SELECT pid, propensity, k, random() AS r FROM people, range(n) t(k))"""
        )
        conn.exec_driver_sql(
            f"""INSERT INTO {schema}.identity_sets SELECT set_hash, set_hash, min(timestamp), max(timestamp)
                FROM {schema}.events GROUP BY set_hash"""
        )
        conn.exec_driver_sql(
            f"INSERT INTO {schema}.profiles SELECT profile_id, first_seen FROM {schema}.identity_sets"
        )
        state.put_time(conn, engine.tables, state.IDENTITY_AS_OF, AS_OF)
        events = conn.execute(sa.text(f"SELECT count(*) FROM {schema}.events")).scalar()
    engine.dispose()
    return {"events": events}


def _phase_predictive(root: str) -> dict[str, Any]:
    """Train (forced) and score as of AS_OF."""
    from activation_pipeline.compute.engine import ComputeEngine
    from activation_pipeline.compute.predictive import compute_predictive_traits

    workspace = _workspace(Path(root))
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    engine = ComputeEngine.for_workspace(workspace)
    summary = compute_predictive_traits(engine, workspace, AS_OF, retrain=True)
    engine.dispose()
    after = resource.getrusage(resource.RUSAGE_SELF)
    (result,) = summary.traits
    figures = result.figures
    return {
        "stage_s": time.perf_counter() - started,
        "cpu_s": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
        "features_seconds": figures["features_seconds"],
        "sampled_every": figures["sampled_every"],
        "scored": result.scored,
        "training_seconds": figures["training_seconds"],
        "scoring_seconds": result.scoring_seconds,
        "auc": figures["auc"],
        "base_rate": figures["base_rate"],
        "training_rows": figures["training_rows"],
        "population": figures["population"],
    }


def main() -> None:
    """Set up N profiles, then time the predictive stage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="predictive_bench_") as root:
        print(
            f"predictive traits, {args.profiles:,} profiles (DuckDB, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)"
        )
        setup = run_phase("setup", _phase_setup, root, args.profiles)
        result = run_phase("predictive", _phase_predictive, root)
        print(
            f"  {setup['events']:,} events; population {result['population']:,}, training features of every "
            f"{result['sampled_every']} profile(s) {result['features_seconds']:.1f} s, trained on "
            f"{result['training_rows']:,} (fit, evaluation and importances {result['training_seconds']:.1f} s), "
            f"scored {result['scored']:,} (features and scoring {result['scoring_seconds']:.1f} s); "
            f"AUC {result['auc']}, base rate {result['base_rate']}"
        )
        print(
            f"  training + scoring: {result['wall_s']:.1f} s wall (target 60 s) including start-up; the stage "
            f"{result['stage_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU on {os.cpu_count()} cores; "
            f"peak {result['peak_mb']:.0f} MB (target 2,048 MB)"
        )


if __name__ == "__main__":
    main()
