"""Compute benchmark (not a test): full and incremental evaluation against a hand-written DuckDB query.

    .venv/bin/python benchmarks/compute_benchmark.py --profiles 1000000 --events 20000000

Events are synthesised directly in DuckDB SQL (Python JSON would take too long at this size) into the
compute schema's `events` table, in the same layout the landing step writes. Each phase runs in its own
process so that its peak memory (max RSS, Python + DuckDB) is measured on its own:

1. synth        the events (not timed as part of the evaluation)
2. full         `ComputePipeline.evaluate(T, full=True)`: identity, custom, computed and SQL traits, audiences
3. reference    a plain hand-written DuckDB script doing the same trait and audience work (and changes)
                on the identity graph from phase 2
4. new events   1% of profiles get new events in (T, T + 1h] (a new landing batch)
5. incremental  `evaluate(T + 1h)`: only affected profiles (new events, events leaving windows)
6. full again   `evaluate(T + 1h, full=True)`, and a check that it equals the incremental result

Figures are printed and written to benchmarks/out/results_<profiles>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AS_OF = datetime(2026, 11, 1)
AS_OF_2 = AS_OF + timedelta(hours=1)
SCHEMA = "bench"
CATEGORIES = ["Electronics", "Books", "Shoes", "Apparel", "Beauty", "Toys", "Home", "Garden"]
PLANS = ["free", "basic", "pro", "enterprise"]


def _settings(memory_limit: str) -> dict[str, str]:
    return {"threads": "2", "memory_limit": memory_limit, "preserve_insertion_order": "false"}


def _pipeline(db: Path, memory_limit: str) -> Any:
    from activation_pipeline.compute.engine import ComputeEngine
    from activation_pipeline.compute.pipeline import ComputePipeline
    from activation_pipeline.config import validate_text

    text = (ROOT / "benchmarks" / "bench_workspace.yml").read_text()
    workspace, problems = validate_text(text, base_dir=ROOT / "benchmarks")
    assert workspace is not None, problems
    engine = ComputeEngine(f"duckdb:///{db}", SCHEMA, duckdb_settings=_settings(memory_limit))
    return ComputePipeline(workspace, engine)


def _list(values: list[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def synth_sql(profiles: int, events: int) -> list[str]:
    """SQL that fills `bench.events` with `events` messages for `profiles` people, sorted by time."""
    tracks = events - profiles
    span = 180 * 86_400_000_000
    s = SCHEMA
    return [
        f"""
        INSERT INTO {s}.events
        WITH base AS (
            SELECT i, (hash(i) % {profiles})::BIGINT AS p, hash(i * 31 + 7) % 1000 AS r,
                   TIMESTAMP '{AS_OF}' - to_microseconds((hash(i * 17 + 3) % {span})::BIGINT) AS ts
            FROM range({tracks}) t(i)
        ), tracks AS (
            SELECT 't' || i AS message_id, 'track' AS type,
                   CASE WHEN r < 550 THEN 'Product Viewed' WHEN r < 700 THEN 'Product Added'
                        WHEN r < 800 THEN 'Order Completed' WHEN r < 900 THEN 'Email Opened'
                        ELSE 'Signed In' END AS event,
                   CASE WHEN r % 10 < 3 THEN NULL ELSE 'u' || p END AS user_id,
                   'a' || p AS anonymous_id, ts, p, r, i
            FROM base
        ), shaped AS (
            SELECT message_id, type, event, user_id, anonymous_id, NULL AS group_id, NULL AS previous_id,
                   ts AS timestamp, ts AS received_at, ts::DATE AS day, 1 AS batch,
                   CASE WHEN user_id IS NULL THEN '[["anonymous_id","a' || p || '"]]'
                        ELSE '[["user_id","u' || p || '"],["anonymous_id","a' || p || '"]]' END AS ids,
                   '{{}}' AS traits,
                   CASE WHEN event IN ('Product Viewed', 'Product Added') THEN
                            '{{"category":"' || {_list(CATEGORIES)}[(hash(i * 13) % 8)::INT + 1]
                            || '","price":' || ((hash(i * 5) % 20000) / 100.0)::VARCHAR || '}}'
                        WHEN event = 'Order Completed' THEN
                            '{{"revenue":' || ((hash(i * 11) % 50000) / 100.0)::VARCHAR || ',"currency":"USD"}}'
                        WHEN event = 'Email Opened' THEN '{{"campaign":"c' || (hash(i * 3) % 20) || '"}}'
                        ELSE '{{}}' END AS properties
            FROM tracks
        ), identifies AS (
            SELECT 'i' || p AS message_id, 'identify' AS type, NULL AS event, 'u' || p AS user_id,
                   'a' || p AS anonymous_id, NULL AS group_id, NULL AS previous_id, ts AS timestamp,
                   ts AS received_at, ts::DATE AS day, 1 AS batch,
                   '[["user_id","u' || p || '"],["email","u' || p || '@example.com"],["anonymous_id","a' || p || '"]]' AS ids,
                   '{{"plan":"' || {_list(PLANS)}[(p % 4)::INT + 1] || '","email":"u' || p || '@example.com"}}' AS traits,
                   '{{}}' AS properties
            FROM (SELECT range AS p, TIMESTAMP '{AS_OF}' - to_microseconds((hash(range * 7) % {span})::BIGINT) AS ts
                  FROM range({profiles}))
        ), everything AS (SELECT * FROM shaped UNION ALL SELECT * FROM identifies)
        SELECT message_id, type, event, user_id, anonymous_id, group_id, previous_id, timestamp, received_at, day,
               batch, (hash(ids) >> 1)::BIGINT AS set_hash, ids, traits::JSON, properties::JSON, '{{}}'::JSON
        FROM everything ORDER BY timestamp
        """,
        f"INSERT INTO {s}.landings SELECT DISTINCT day, 1, 'synthetic', 0, 0, now()::TIMESTAMP FROM {s}.events",
        # The identifiers of each identifier set, as landing records them (`set_keys`).
        f"""
        INSERT INTO {s}.set_keys
        WITH sets AS (
            SELECT p, '[["anonymous_id","a' || p || '"]]' AS anon,
                   '[["user_id","u' || p || '"],["anonymous_id","a' || p || '"]]' AS known,
                   '[["user_id","u' || p || '"],["email","u' || p || '@example.com"],["anonymous_id","a' || p || '"]]' AS ident
            FROM range({profiles}) t(p))
        SELECT (hash(anon) >> 1)::BIGINT, 0, 'anonymous_id', 'a' || p FROM sets
        UNION ALL SELECT (hash(known) >> 1)::BIGINT, 0, 'user_id', 'u' || p FROM sets
        UNION ALL SELECT (hash(known) >> 1)::BIGINT, 1, 'anonymous_id', 'a' || p FROM sets
        UNION ALL SELECT (hash(ident) >> 1)::BIGINT, 0, 'user_id', 'u' || p FROM sets
        UNION ALL SELECT (hash(ident) >> 1)::BIGINT, 1, 'email', 'u' || p || '@example.com' FROM sets
        UNION ALL SELECT (hash(ident) >> 1)::BIGINT, 2, 'anonymous_id', 'a' || p FROM sets
        """,
    ]


def new_events_sql(profiles: int, start: datetime = AS_OF, batch: int = 2) -> list[str]:
    """SQL adding 5 events for each of 1% of profiles in (start, start + 1h], as a new landing batch."""
    changed = max(1, profiles // 100)
    s = SCHEMA
    end = start + timedelta(hours=1)
    return [
        f"""
        INSERT INTO {s}.events
        SELECT 'n' || i, 'track', CASE WHEN i % 5 = 0 THEN 'Order Completed' ELSE 'Product Viewed' END,
               'u' || p, 'a' || p, NULL, NULL, ts, ts, ts::DATE, {batch},
               (hash('[["user_id","u' || p || '"],["anonymous_id","a' || p || '"]]') >> 1)::BIGINT,
               '[["user_id","u' || p || '"],["anonymous_id","a' || p || '"]]', '{{}}'::JSON,
               (CASE WHEN i % 5 = 0 THEN '{{"revenue":300.0}}' ELSE '{{"category":"Electronics"}}' END)::JSON, '{{}}'::JSON
        FROM (SELECT i, (hash(i * 101 + {batch}) % {profiles})::BIGINT AS p,
                     TIMESTAMP '{start}' + to_microseconds(1 + (hash(i * 7 + 5) % 3599000000)::BIGINT) AS ts
              FROM range({changed * 5}) t(i))
        ORDER BY ts
        """,
        f"DELETE FROM {s}.landings WHERE day = DATE '{end.date()}'",
        f"INSERT INTO {s}.landings VALUES (DATE '{end.date()}', {batch}, 'synthetic', 0, 0, now()::TIMESTAMP)",
    ]


def reference_sql(as_of: datetime, slices: int = 1) -> list[str]:
    """The hand-written DuckDB script: the bench workspace's traits, audiences and changes.

    With `slices` > 1 the per-profile aggregation runs on one slice of profiles at a time (as the
    pipeline does above 1M profiles); in one piece it does not fit in 8 GB at 10M profiles.
    """
    s = SCHEMA
    t = f"TIMESTAMP '{as_of}'"

    def ago(days: int) -> str:
        return f"{t} - INTERVAL {days} DAY"

    def agg_statement(head: str, k: int) -> str:
        slice_filter = f"AND s.profile_id % {slices} = {k}" if slices > 1 else ""
        profile_filter = f"WHERE p.profile_id % {slices} = {k}" if slices > 1 else ""
        return f"""
        {head}
        WITH ev AS (
            SELECT s.profile_id, e.event, e.timestamp AS ts, e.message_id,
                   TRY_CAST(e.properties->>'$.revenue' AS DOUBLE) AS revenue,
                   e.properties->>'$.category' AS category, e.properties->>'$.campaign' AS campaign
            FROM {s}.events e JOIN {s}.identity_sets s USING (set_hash)
            WHERE e.type = 'track' AND e.timestamp <= {t} {slice_filter}
              AND e.event IN ('Order Completed', 'Product Viewed', 'Product Added', 'Email Opened')
        ), mf AS (
            SELECT profile_id, arg_max(category, (n, last_ts, -rank)) AS favourite_category FROM (
                SELECT profile_id, category, count(*) AS n, max(ts) AS last_ts,
                       dense_rank() OVER (PARTITION BY profile_id ORDER BY category) AS rank
                FROM ev WHERE event = 'Product Viewed' AND ts > {ago(90)} AND category IS NOT NULL
                GROUP BY profile_id, category) WHERE n >= 2 GROUP BY profile_id
        ), agg AS (
            SELECT profile_id,
                count(*) FILTER (WHERE event = 'Order Completed') AS orders,
                coalesce(sum(revenue) FILTER (WHERE event = 'Order Completed' AND ts > {ago(180)}), 0) AS revenue_180d,
                avg(revenue) FILTER (WHERE event = 'Order Completed' AND ts > {ago(90)}) AS avg_order_90d,
                max(revenue) FILTER (WHERE event = 'Order Completed') AS largest_order,
                count(*) FILTER (WHERE event = 'Product Viewed' AND ts > {ago(30)}) AS views_30d,
                arg_min(revenue, (ts, message_id)) FILTER (WHERE event = 'Order Completed' AND revenue IS NOT NULL) AS first_order_revenue,
                arg_max(campaign, (ts, message_id)) FILTER (WHERE event = 'Email Opened' AND campaign IS NOT NULL) AS last_campaign,
                (array_agg(DISTINCT category ORDER BY category)
                    FILTER (WHERE event = 'Product Viewed' AND ts > {ago(30)} AND category IS NOT NULL))[1:10] AS categories_30d,
                count(*) FILTER (WHERE event = 'Product Viewed' AND ts > {ago(30)}) AS c_pv30,
                count(*) FILTER (WHERE event = 'Product Added' AND ts > {ago(7)}) AS c_pa7,
                count(*) FILTER (WHERE event = 'Order Completed' AND ts > {ago(7)}) AS c_oc7,
                count(*) FILTER (WHERE event = 'Order Completed' AND ts > {ago(90)}) AS c_oc90,
                count(*) FILTER (WHERE event = 'Email Opened' AND ts > {ago(30)}) AS c_eo30
            FROM ev GROUP BY profile_id
        )
        SELECT p.profile_id, coalesce(a.orders, 0) AS orders, coalesce(a.revenue_180d, 0) AS revenue_180d,
               a.avg_order_90d, a.largest_order, coalesce(a.views_30d, 0) AS views_30d, mf.favourite_category,
               a.first_order_revenue, a.last_campaign, a.categories_30d,
               coalesce(a.c_pv30, 0) AS c_pv30, coalesce(a.c_pa7, 0) AS c_pa7, coalesce(a.c_oc7, 0) AS c_oc7,
               coalesce(a.c_oc90, 0) AS c_oc90, coalesce(a.c_eo30, 0) AS c_eo30
        FROM {s}.profiles p LEFT JOIN agg a USING (profile_id) LEFT JOIN mf USING (profile_id) {profile_filter}
        """

    return [
        f"""
        CREATE OR REPLACE TABLE {s}.ref_custom AS
        SELECT s.profile_id, arg_max(e.traits->>'$.plan', (e.timestamp, e.message_id))
                   FILTER (WHERE e.traits->>'$.plan' IS NOT NULL) AS plan
        FROM {s}.events e JOIN {s}.identity_sets s USING (set_hash)
        WHERE e.type = 'identify' AND e.timestamp <= {t} GROUP BY s.profile_id
        """,
        *[
            agg_statement(
                f"CREATE OR REPLACE TABLE {s}.ref_agg AS" if k == 0 else f"INSERT INTO {s}.ref_agg", k
            )
            for k in range(slices)
        ],
        f"""
        CREATE OR REPLACE TABLE {s}.ref_members AS
        WITH t AS (SELECT a.*, c.plan FROM {s}.ref_agg a LEFT JOIN {s}.ref_custom c USING (profile_id)),
        hv AS (SELECT profile_id FROM t WHERE revenue_180d > 500 AND c_pv30 >= 3)
        SELECT 'high_value_recent' AS audience_key, profile_id FROM hv
        UNION ALL SELECT 'cart_abandoners', profile_id FROM t WHERE c_pa7 >= 1 AND c_oc7 <= 0
        UNION ALL SELECT 'lapsed', profile_id FROM t WHERE orders >= 1 AND NOT c_oc90 >= 1
        UNION ALL SELECT 'engaged', profile_id FROM t WHERE c_eo30 >= 2 OR coalesce(plan IN ('pro', 'enterprise'), false)
        UNION ALL SELECT 'vip', profile_id FROM t WHERE profile_id IN (SELECT profile_id FROM hv)
            AND coalesce(favourite_category = 'Electronics', false)
        """,
        f"""
        CREATE OR REPLACE TABLE {s}.ref_changes AS
        WITH before AS (
            SELECT DISTINCT m.audience_key, coalesce(a.profile_id, m.profile_id) AS profile_id
            FROM {s}.audience_membership_previous m LEFT JOIN {s}.profile_aliases a ON a.old_profile_id = m.profile_id)
        SELECT audience_key, profile_id, 'entered' AS change FROM (
            SELECT audience_key, profile_id FROM {s}.ref_members EXCEPT SELECT audience_key, profile_id FROM before)
        UNION ALL SELECT audience_key, profile_id, 'exited' FROM (
            SELECT audience_key, profile_id FROM before EXCEPT SELECT audience_key, profile_id FROM {s}.ref_members)
        """,
    ]


# ------------------------------------------------------------------------------------------ phases


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _phase_synth(db: str, profiles: int, events: int, memory_limit: str) -> dict[str, Any]:
    pipeline = _pipeline(Path(db), memory_limit)
    with pipeline.engine.begin() as conn:
        for sql in synth_sql(profiles, events):
            conn.exec_driver_sql(sql)
        count = conn.exec_driver_sql(f"SELECT count(*) FROM {SCHEMA}.events").scalar()
    pipeline.close()
    return {"events": count}


def _stages(summary: Any) -> dict[str, Any]:
    return {
        "identity_mode": summary.identity.mode,
        "profiles": summary.identity.profiles,
        "audience_sizes": {a.key: a.size for a in summary.audiences.audiences},
        "entered": {a.key: a.entered for a in summary.audiences.audiences},
        "exited": {a.key: a.exited for a in summary.audiences.audiences},
        "recomputed": summary.audiences.recomputed,
    }


def _phase_evaluate(db: str, as_of: str, full: bool, memory_limit: str) -> dict[str, Any]:
    pipeline = _pipeline(Path(db), memory_limit)
    moment = datetime.fromisoformat(as_of).replace(tzinfo=UTC)
    timings: dict[str, float] = {}
    if full:
        pipeline.force_full()
    results = {}
    for stage in ("resolve_identities", "custom_traits", "computed_traits", "sql_traits", "audiences"):
        start = time.perf_counter()
        results[stage] = getattr(pipeline, stage)(moment)
        timings[stage] = time.perf_counter() - start
        print(f"    {stage:<20} {timings[stage]:8.1f} s   peak so far {_peak_mb():7.0f} MB", flush=True)
    with pipeline.engine.begin() as conn:
        checksum = conn.exec_driver_sql(
            f"SELECT audience_key, count(*), sum(profile_id % 1000003) FROM {SCHEMA}.audience_membership "
            "GROUP BY 1 ORDER BY 1"
        ).all()
        changes = conn.exec_driver_sql(
            f"SELECT audience_key, change, count(*), sum(profile_id % 1000003) FROM {SCHEMA}.audience_changes "
            f"WHERE as_of = TIMESTAMP '{as_of}' GROUP BY 1, 2 ORDER BY 1, 2"
        ).all()
    pipeline.close()
    return {
        "timings": timings,
        "identity_mode": results["resolve_identities"].mode,
        "audience_mode": results["audiences"].mode,
        "profiles": results["resolve_identities"].profiles,
        "recomputed": results["audiences"].recomputed,
        "sizes": {a.key: a.size for a in results["audiences"].audiences},
        "checksum": [list(r) for r in checksum],
        "changes": [list(r) for r in changes],
    }


def _phase_sql(db: str, kind: str, profiles: int, as_of: str, memory_limit: str) -> dict[str, Any]:
    pipeline = _pipeline(Path(db), memory_limit)
    statements = (
        reference_sql(datetime.fromisoformat(as_of)) if kind == "reference" else new_events_sql(profiles)
    )
    out: dict[str, Any] = {}
    with pipeline.engine.begin() as conn:
        for sql in statements:
            conn.exec_driver_sql(sql)
        if kind == "reset":
            out["events"] = conn.exec_driver_sql(f"SELECT count(*) FROM {SCHEMA}.events").scalar()
        if kind == "reference":
            out["sizes"] = dict(
                conn.exec_driver_sql(
                    f"SELECT audience_key, count(*) FROM {SCHEMA}.ref_members GROUP BY 1"
                ).all()
            )
    pipeline.close()
    return out


def _child(queue: Any, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
    start = time.perf_counter()
    try:
        result = fn(*args)
    except BaseException as error:
        queue.put({"error": f"{type(error).__name__}: {error}"})
        raise
    result["wall_s"] = time.perf_counter() - start
    result["peak_mb"] = _peak_mb()
    queue.put(result)


SAVED: Path | None = None
"""Directory where each phase's result is saved (and, with --resume, read back instead of re-running)."""
RESUME = False


def run_phase(name: str, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run one phase in a fresh process; return its result with wall time and peak RSS."""
    saved = SAVED / f"phase_{name.replace(' ', '_')}.json" if SAVED else None
    if RESUME and saved is not None and saved.exists():
        result = json.loads(saved.read_text())
        print(
            f"  {name:<12} {result['wall_s']:8.1f} s   peak {result['peak_mb']:7.0f} MB   (from an earlier run)"
        )
        return result
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, fn, args))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    if "error" in result:
        raise SystemExit(f"phase {name} failed: {result['error']}")
    if saved is not None:
        saved.write_text(json.dumps(result, default=str))
    print(f"  {name:<12} {result['wall_s']:8.1f} s   peak {result['peak_mb']:7.0f} MB", flush=True)
    return result


def main() -> None:
    """Run every phase and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--memory-limit", default="1400MB", help="DuckDB memory_limit (it spills beyond it)")
    parser.add_argument(
        "--reference-memory-limit",
        default=None,
        help="DuckDB memory_limit of the reference (default: the same)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--reuse", action="store_true", help="reuse events synthesised by an earlier run")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --reuse: also reuse the earlier run's synth and full phases",
    )
    parser.add_argument(
        "--second-incremental",
        action="store_true",
        help="after the incremental run, add another 1% of changes in the next hour and run incrementally again",
    )
    parser.add_argument(
        "--skip-full-again",
        action="store_true",
        help="compare the incremental run with the first full run instead of running a second one",
    )
    args = parser.parse_args()
    out = args.out / f"p{args.profiles}"
    db = str(out / "compute.duckdb")
    reuse = args.reuse and Path(db).exists()
    if not reuse:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
    t1, t2 = AS_OF.isoformat(sep=" "), AS_OF_2.isoformat(sep=" ")
    print(
        f"compute benchmark: {args.profiles:,} profiles, {args.events:,} events, DuckDB on 2 threads",
        flush=True,
    )
    global SAVED, RESUME
    SAVED, RESUME = out, reuse and args.resume
    if RESUME:
        synth = run_phase("synth", _phase_synth, db, args.profiles, args.events, args.memory_limit)
        run_phase("reset", _phase_sql, db, "reset", args.profiles, t1, args.memory_limit)
    elif reuse:
        synth = run_phase("reuse", _phase_sql, db, "reset", args.profiles, t1, args.memory_limit)
    else:
        synth = run_phase("synth", _phase_synth, db, args.profiles, args.events, args.memory_limit)
    full = run_phase("full", _phase_evaluate, db, t1, True, args.memory_limit)
    reference_limit = args.reference_memory_limit or args.memory_limit
    reference = run_phase("reference", _phase_sql, db, "reference", args.profiles, t1, reference_limit)
    run_phase("new events", _phase_sql, db, "new_events", args.profiles, t2, args.memory_limit)
    incremental = run_phase("incremental", _phase_evaluate, db, t2, False, args.memory_limit)
    if args.second_incremental:
        run_phase("new events 2", _phase_sql, db, "new_events_2", args.profiles, t2, args.memory_limit)
        t3 = (AS_OF_2 + timedelta(hours=1)).isoformat(sep=" ")
        second = run_phase("incremental 2", _phase_evaluate, db, t3, False, args.memory_limit)
        print(f"  second incremental: {second['wall_s']:.1f} s, peak {second['peak_mb']:.0f} MB", flush=True)
    full2 = (
        full
        if args.skip_full_again
        else run_phase("full again", _phase_evaluate, db, t2, True, args.memory_limit)
    )

    assert full["profiles"] > 0, "no profiles were built"
    assert full["sizes"] == reference["sizes"], (full["sizes"], reference["sizes"])
    same = args.skip_full_again or (
        incremental["checksum"] == full2["checksum"] and incremental["changes"] == full2["changes"]
    )
    trait_audience = sum(full["timings"][k] for k in ("custom_traits", "computed_traits", "audiences"))
    figures = {
        "profiles": args.profiles,
        "events": synth["events"],
        "full_s": full["wall_s"],
        "full_stages_s": full["timings"],
        "full_peak_mb": full["peak_mb"],
        "events_per_s": synth["events"] / full["wall_s"],
        "reference_s": reference["wall_s"],
        "reference_peak_mb": reference["peak_mb"],
        "reference_memory_limit": reference_limit,
        "traits_audiences_s": trait_audience,
        "ratio_traits_audiences_vs_reference": trait_audience / reference["wall_s"],
        "ratio_full_vs_reference": full["wall_s"] / reference["wall_s"],
        "incremental_s": incremental["wall_s"],
        "incremental_stages_s": incremental["timings"],
        "incremental_peak_mb": incremental["peak_mb"],
        "incremental_recomputed_profiles": incremental["recomputed"],
        "full_again_s": full2["wall_s"],
        "full_again_peak_mb": full2["peak_mb"],
        "speedup_incremental_vs_full": full2["wall_s"] / incremental["wall_s"],
        "incremental_equals_full": "not checked" if args.skip_full_again else same,
        "audience_sizes": full["sizes"],
    }
    (out.parent / f"results_{args.profiles}.json").write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps(figures, indent=2, default=str))
    if not same:
        raise SystemExit("incremental result differs from the full recompute")


if __name__ == "__main__":
    main()
