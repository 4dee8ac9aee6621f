"""Compute benchmark (not a test): the product against the best plain code for the same work.

    .venv/bin/python benchmarks/compute_benchmark.py                       # 50k profiles / 1M events, ~1-2 min
    .venv/bin/python benchmarks/compute_benchmark.py --profiles 1000000 --events 20000000

One set of events is generated in DuckDB SQL (`benchmarks/bench_workspace.yml`'s traits and audiences; each
profile has a user id, an anonymous id and an email, one in five a second device; 30% of events anonymous),
kept as a typed, time-sorted table (the reference's copy) and written as JSONL files (the product's source).
Each phase runs in its own process so its peak memory (max RSS, Python + DuckDB) is its own:

1. synth        generate the events; write the JSONL files                                   (not timed)
2. black box    `activation-pipeline run <workspace> --no-sync --as-of T`: lands the files through the
                product's landing (DuckDB parser, typed event columns) and evaluates, through Dagster
3. full         `ComputePipeline.evaluate(T, full=True)` on the landed events, stage by stage
4. reference    hand-written plain code on the typed, time-sorted copy: identity by scipy connected
                components over identifier sets (edges read from DuckDB through Arrow), one filtered
                aggregation per trait, audience conditions
5. ref files    the same reference, but starting from the JSONL files (DuckDB `read_json`)
6. compare      product vs reference: audience memberships and trait values per profile (profiles keyed by
                their smallest anonymous id, so ids need not agree); mismatch counts are printed
7. new events   1% of profiles get 5 events in (T, T + 1h], as a new JSONL file; the product lands it
8. incremental  `evaluate(T + 1h)`
9. full again   `evaluate(T + 1h, full=True)`, and a check that memberships and trait values equal the
                incremental result

Figures are printed (not asserted) and written to benchmarks/out/results_<profiles>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from phases import peak_mb, run_phase

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AS_OF = datetime(2026, 11, 1)
AS_OF_2 = AS_OF + timedelta(hours=1)
CATEGORIES = ["Electronics", "Books", "Shoes", "Apparel", "Beauty", "Toys", "Home", "Garden"]
PLANS = ["free", "basic", "pro", "enterprise"]
EVENTS_PER_FILE = 2_000_000
TRAITS = [
    "orders", "revenue_180d", "avg_order_90d", "largest_order", "views_30d", "favourite_category",
    "first_order_revenue", "last_campaign", "categories_30d", "plan",
]  # fmt: skip
NUMERIC = {"revenue_180d", "avg_order_90d", "largest_order", "first_order_revenue"}
AUDIENCES = ["cart_abandoners", "engaged", "high_value_recent", "lapsed", "vip"]


def _settings(memory_limit: str | None) -> dict[str, str]:
    settings = {"threads": "2", "preserve_insertion_order": "false"}
    if memory_limit:
        settings["memory_limit"] = memory_limit
    return settings


def _connect(path: str, memory_limit: str | None) -> Any:
    import duckdb

    con = duckdb.connect(path)
    for key, value in _settings(memory_limit).items():
        con.execute(f"SET {key} = '{value}'")
    return con


def _list(values: list[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


# ------------------------------------------------------------------------------------------ the events

TYPED_COLUMNS = (
    "message_id VARCHAR, type VARCHAR, event VARCHAR, user_id VARCHAR, anonymous_id VARCHAR, email VARCHAR, "
    "ts TIMESTAMP, set_hash UBIGINT, revenue DOUBLE, price DOUBLE, category VARCHAR, campaign VARCHAR, "
    "plan VARCHAR"
)


def synth_sql(profiles: int, events: int) -> list[str]:
    """SQL for the typed, time-sorted events: one identify per profile, `events - profiles` tracks.

    Generated unsorted first, then sorted into `events` in a statement of its own: at 100M events the two in
    one statement ran out of memory where the sort alone spills to disk.
    """
    span = 180 * 86_400_000_000
    generate = f"""
    CREATE OR REPLACE TABLE events_unsorted AS
    WITH base AS (
        SELECT i, (hash(i) % {profiles})::BIGINT AS p, hash(i * 31 + 7) % 1000 AS r,
               TIMESTAMP '{AS_OF}' - to_microseconds((hash(i * 17 + 3) % {span})::BIGINT) AS ts
        FROM range({events - profiles}) t(i)
    ), tracks AS (
        SELECT 't' || i AS message_id, 'track' AS type,
               CASE WHEN r < 550 THEN 'Product Viewed' WHEN r < 700 THEN 'Product Added'
                    WHEN r < 800 THEN 'Order Completed' WHEN r < 900 THEN 'Email Opened'
                    ELSE 'Signed In' END AS event,
               CASE WHEN r % 10 < 3 THEN NULL ELSE 'u' || p END AS user_id,
               CASE WHEN p % 5 = 0 AND hash(i * 29) % 2 = 0 THEN 'b' ELSE 'a' END || p AS anonymous_id,
               NULL::VARCHAR AS email, ts, i, r
        FROM base
    ), shaped AS (
        SELECT message_id, type, event, user_id, anonymous_id, email, ts,
               CASE WHEN event = 'Order Completed' THEN ((hash(i * 11) % 50000) / 100)::DOUBLE END AS revenue,
               CASE WHEN event IN ('Product Viewed', 'Product Added')
                    THEN ((hash(i * 5) % 20000) / 100)::DOUBLE END AS price,
               CASE WHEN event IN ('Product Viewed', 'Product Added')
                    THEN {_list(CATEGORIES)}[(hash(i * 13) % 8)::INT + 1] END AS category,
               CASE WHEN event = 'Email Opened' THEN 'c' || (hash(i * 3) % 20) END AS campaign,
               NULL::VARCHAR AS plan
        FROM tracks
    ), identifies AS (
        SELECT 'i' || p, 'identify', NULL, 'u' || p, 'a' || p, 'u' || p || '@example.com',
               TIMESTAMP '{AS_OF}' - to_microseconds((hash(p * 7) % {span})::BIGINT),
               NULL, NULL, NULL, NULL, {_list(PLANS)}[(p % 4)::INT + 1]
        FROM range({profiles}) t(p)
    )
    SELECT message_id, type, event, user_id, anonymous_id, email, ts,
           hash(user_id, anonymous_id, email) AS set_hash, revenue, price, category, campaign, plan
    FROM (SELECT * FROM shaped UNION ALL SELECT * FROM identifies)
    """
    return [
        "SET preserve_insertion_order = false",
        generate,
        "SET preserve_insertion_order = true",  # keep the copy time-sorted
        "CREATE OR REPLACE TABLE events AS SELECT * FROM events_unsorted ORDER BY ts",
        "DROP TABLE events_unsorted",
    ]


def new_events_sql(profiles: int, start: datetime, batch: int) -> str:
    """SQL: 5 events for each of 1% of profiles in (start, start + 1h] (typed, like `events`)."""
    changed = max(1, profiles // 100)
    return f"""
    SELECT 'n{batch}_' || i AS message_id, 'track' AS type,
           CASE WHEN i % 5 = 0 THEN 'Order Completed' ELSE 'Product Viewed' END AS event,
           'u' || p AS user_id, 'a' || p AS anonymous_id, NULL::VARCHAR AS email, ts,
           hash('u' || p, 'a' || p, NULL::VARCHAR) AS set_hash,
           CASE WHEN i % 5 = 0 THEN 300.0::DOUBLE END AS revenue, NULL::DOUBLE AS price,
           CASE WHEN i % 5 <> 0 THEN 'Electronics' END AS category, NULL::VARCHAR AS campaign,
           NULL::VARCHAR AS plan
    FROM (SELECT i, (hash(i * 101 + {batch}) % {profiles})::BIGINT AS p,
                 TIMESTAMP '{start}' + to_microseconds(1 + (hash(i * 7 + 5) % 3599000000)::BIGINT) AS ts
          FROM range({changed * 5}) t(i))
    ORDER BY ts
    """


def jsonl_select(where: str) -> str:
    """SQL: Segment-spec messages (one JSON object per row) from the typed events."""
    return f"""
    SELECT type, message_id AS "messageId", event, user_id AS "userId", anonymous_id AS "anonymousId",
           strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') AS "timestamp",
           CASE WHEN type = 'identify' THEN json_object('plan', plan, 'email', email) END AS traits,
           CASE WHEN event = 'Order Completed' THEN json_object('revenue', revenue, 'currency', 'USD')
                WHEN event IN ('Product Viewed', 'Product Added') THEN json_object('category', category, 'price', price)
                WHEN event = 'Email Opened' THEN json_object('campaign', campaign)
                WHEN type = 'track' THEN json_object() END AS properties,
           json_object('library', json_object('name', 'analytics.js')) AS context
    FROM events WHERE {where}
    """


READ_JSON = """
    SELECT "messageId" AS message_id, type, event, "userId" AS user_id, "anonymousId" AS anonymous_id,
           traits.email AS email, "timestamp"::TIMESTAMPTZ::TIMESTAMP AS ts,
           hash("userId", "anonymousId", traits.email) AS set_hash, properties.revenue AS revenue,
           properties.price AS price, properties.category AS category, properties.campaign AS campaign,
           traits.plan AS plan
    FROM read_json('{glob}', format = 'newline_delimited', columns = {{
        'type': 'VARCHAR', 'messageId': 'VARCHAR', 'event': 'VARCHAR', 'userId': 'VARCHAR',
        'anonymousId': 'VARCHAR', 'timestamp': 'VARCHAR', 'traits': 'STRUCT(plan VARCHAR, email VARCHAR)',
        'properties': 'STRUCT(revenue DOUBLE, price DOUBLE, category VARCHAR, campaign VARCHAR)'}})
    ORDER BY ts
"""

# ------------------------------------------------------------------------------------------ reference


def reference_identity(con: Any, as_of: datetime) -> dict[str, Any]:
    """Identity by connected components: identifier sets linked through shared identifiers (scipy)."""
    import numpy as np
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import connected_components

    t = f"TIMESTAMP '{as_of}'"
    con.execute(f"""
        CREATE OR REPLACE TABLE r_sets AS
        SELECT row_number() OVER () - 1 AS sid, hash(user_id, anonymous_id, email) AS set_hash, * FROM (
            SELECT DISTINCT user_id, anonymous_id, email FROM events WHERE ts <= {t})""")
    edges = con.sql("""
        WITH ids AS (
            SELECT sid, 1 AS k, user_id AS v FROM r_sets WHERE user_id IS NOT NULL
            UNION ALL SELECT sid, 2, anonymous_id FROM r_sets WHERE anonymous_id IS NOT NULL
            UNION ALL SELECT sid, 3, email FROM r_sets WHERE email IS NOT NULL)
        SELECT i.sid, a.anchor FROM ids i JOIN (SELECT k, v, min(sid) AS anchor FROM ids GROUP BY k, v) a USING (k, v)
        WHERE i.sid <> a.anchor""").to_arrow_table()
    n = int(con.execute("SELECT count(*) FROM r_sets").fetchall()[0][0])
    a = edges.column("sid").to_numpy()
    b = edges.column("anchor").to_numpy()
    graph = csr_array((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    import pyarrow as pa

    con.register(
        "labels", pa.table({"sid": np.arange(n, dtype=np.int64), "profile": labels.astype(np.int64)})
    )
    con.execute(
        "CREATE OR REPLACE TABLE r_set_profile AS SELECT s.set_hash, l.profile FROM r_sets s JOIN labels l USING (sid)"
    )
    con.unregister("labels")
    con.execute("CREATE OR REPLACE TABLE r_profiles AS SELECT DISTINCT profile FROM r_set_profile")
    return {"profiles": count, "identifier_sets": n, "edges": len(a)}


def reference_trait_sql(as_of: datetime) -> dict[str, str]:
    """One filtered aggregation per trait (and per audience event condition), on the typed copy."""
    t = f"TIMESTAMP '{as_of}'"

    def ev(cond: str, days: int | None = None) -> str:
        window = f" AND e.ts > {t} - INTERVAL {days} DAY" if days else ""
        return f"FROM events e JOIN r_set_profile s USING (set_hash) WHERE e.ts <= {t} AND {cond}{window}"

    identify = "e.type = 'identify' AND plan IS NOT NULL"
    oc, pv, pa_, eo = (
        f"e.event = '{x}'" for x in ("Order Completed", "Product Viewed", "Product Added", "Email Opened")
    )
    return {
        "orders": f"SELECT profile, count(*) AS v {ev(oc)} GROUP BY 1",
        "revenue_180d": f"SELECT profile, sum(revenue) AS v {ev(oc + ' AND revenue IS NOT NULL', 180)} GROUP BY 1",
        "avg_order_90d": f"SELECT profile, avg(revenue) AS v {ev(oc + ' AND revenue IS NOT NULL', 90)} GROUP BY 1",
        "largest_order": f"SELECT profile, max(revenue) AS v {ev(oc + ' AND revenue IS NOT NULL')} GROUP BY 1",
        "views_30d": f"SELECT profile, count(*) AS v {ev(pv, 30)} GROUP BY 1",
        "favourite_category": f"""
            SELECT profile, arg_max(category, (n, last_ts, -rank)) AS v FROM (
                SELECT profile, category, count(*) AS n, max(ts) AS last_ts,
                       dense_rank() OVER (PARTITION BY profile ORDER BY category) AS rank
                {ev(pv + " AND category IS NOT NULL", 90)} GROUP BY 1, 2) WHERE n >= 2 GROUP BY 1""",
        "first_order_revenue": f"SELECT profile, arg_min(revenue, (ts, message_id)) AS v {ev(oc + ' AND revenue IS NOT NULL')} GROUP BY 1",
        "last_campaign": f"SELECT profile, arg_max(campaign, (ts, message_id)) AS v {ev(eo + ' AND campaign IS NOT NULL')} GROUP BY 1",
        "categories_30d": f"SELECT profile, list(DISTINCT category ORDER BY category)[1:10] AS v {ev(pv + ' AND category IS NOT NULL', 30)} GROUP BY 1",
        "plan": f"SELECT profile, arg_max(plan, (ts, message_id)) AS v {ev(identify)} GROUP BY 1",
        "c_pa7": f"SELECT profile, count(*) AS v {ev(pa_, 7)} GROUP BY 1",
        "c_oc7": f"SELECT profile, count(*) AS v {ev(oc, 7)} GROUP BY 1",
        "c_oc90": f"SELECT profile, count(*) AS v {ev(oc, 90)} GROUP BY 1",
        "c_eo30": f"SELECT profile, count(*) AS v {ev(eo, 30)} GROUP BY 1",
    }


def reference_traits(con: Any, as_of: datetime) -> None:
    """The trait tables, then one table of every trait per profile (like the product's trait tables)."""
    for name, sql in reference_trait_sql(as_of).items():
        con.execute(f"CREATE OR REPLACE TABLE r_{name} AS {sql}")
    zero = {"orders": "0", "revenue_180d": "0.0", "views_30d": "0"}
    columns = ", ".join(
        f"coalesce(r_{k}.v, {zero[k]}) AS {k}" if k in zero else f"r_{k}.v AS {k}" for k in TRAITS
    )
    joins = " ".join(f"LEFT JOIN r_{k} USING (profile)" for k in TRAITS)
    con.execute(f"CREATE OR REPLACE TABLE r_traits AS SELECT profile, {columns} FROM r_profiles {joins}")


REFERENCE_AUDIENCES = """
    CREATE OR REPLACE TABLE r_members AS
    WITH hv AS (SELECT profile FROM r_revenue_180d WHERE v > 500
                INTERSECT SELECT profile FROM r_views_30d WHERE v >= 3)
    SELECT 'high_value_recent' AS audience_key, profile FROM hv
    UNION ALL SELECT 'cart_abandoners', profile FROM (
        SELECT profile FROM r_c_pa7 WHERE v >= 1 EXCEPT SELECT profile FROM r_c_oc7 WHERE v > 0)
    UNION ALL SELECT 'lapsed', profile FROM (
        SELECT profile FROM r_orders WHERE v >= 1 EXCEPT SELECT profile FROM r_c_oc90 WHERE v >= 1)
    UNION ALL SELECT 'engaged', profile FROM (
        SELECT profile FROM r_c_eo30 WHERE v >= 2 UNION SELECT profile FROM r_plan WHERE v IN ('pro', 'enterprise'))
    UNION ALL SELECT 'vip', profile FROM (
        SELECT profile FROM hv INTERSECT SELECT profile FROM r_favourite_category WHERE v = 'Electronics')
"""


def run_reference(con: Any, as_of: datetime) -> dict[str, Any]:
    """Identity, traits and audiences by the reference; wall time of each."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    identity = reference_identity(con, as_of)
    timings["identity"] = time.perf_counter() - start
    start = time.perf_counter()
    reference_traits(con, as_of)
    timings["traits"] = time.perf_counter() - start
    start = time.perf_counter()
    con.execute(REFERENCE_AUDIENCES)
    timings["audiences"] = time.perf_counter() - start
    sizes = dict(con.execute("SELECT audience_key, count(*) FROM r_members GROUP BY 1 ORDER BY 1").fetchall())
    return {"timings": timings, "identity": identity, "sizes": sizes}


# ------------------------------------------------------------------------------------------ phases


def _paths(out: Path) -> dict[str, Path]:
    return {
        "ref": out / "reference.duckdb",
        "ref_files": out / "reference_files.duckdb",
        "events": out / "events",
        "workspace": out / "workspace.yml",
        "product": out / "product.duckdb",
    }


def _workspace_file(out: Path) -> Path:
    text = (ROOT / "benchmarks" / "bench_workspace.yml").read_text()
    text = text.replace("path: out/bench.duckdb", "path: product.duckdb")
    path = _paths(out)["workspace"]
    path.write_text(text)
    return path


def _pipeline(out: Path, memory_limit: str | None) -> Any:
    from activation_pipeline.compute.engine import ComputeEngine, default_schema, engine_url
    from activation_pipeline.compute.pipeline import ComputePipeline
    from activation_pipeline.config import load_workspace

    workspace = load_workspace(str(_paths(out)["workspace"]))
    engine = ComputeEngine(
        engine_url(workspace), default_schema(workspace), duckdb_settings=_settings(memory_limit)
    )
    return ComputePipeline(workspace, engine)


def _write_jsonl(con: Any, where: str, path: Path) -> None:
    con.execute(f"COPY ({jsonl_select(where)}) TO '{path}' (FORMAT JSON)")


def _phase_synth(out: str, profiles: int, events: int, memory_limit: str | None) -> dict[str, Any]:
    paths = _paths(Path(out))
    con = _connect(str(paths["ref"]), None)  # not timed: DuckDB's default memory limit
    start = time.perf_counter()
    for statement in synth_sql(profiles, events):
        con.execute(statement)
    generated = time.perf_counter() - start
    total = int(con.execute("SELECT count(*) FROM events").fetchall()[0][0])
    paths["events"].mkdir(parents=True, exist_ok=True)
    files = max(1, -(-total // EVENTS_PER_FILE))
    start = time.perf_counter()
    for k in range(files):
        lo, hi = k * EVENTS_PER_FILE, (k + 1) * EVENTS_PER_FILE
        _write_jsonl(con, f"rowid >= {lo} AND rowid < {hi}", paths["events"] / f"part-{k:04d}.jsonl")
    written = time.perf_counter() - start
    con.close()
    size = sum(p.stat().st_size for p in paths["events"].iterdir())
    return {"events": total, "files": files, "bytes": size, "generate_s": generated, "write_jsonl_s": written}


def _phase_blackbox(out: str, as_of: str) -> dict[str, Any]:
    paths = _paths(Path(out))
    command = [
        str(ROOT / ".venv" / "bin" / "activation-pipeline"), "run", str(paths["workspace"]), "--no-sync",
        "--as-of", as_of,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"run failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}")
    # `run` prints "events: N landed (...) ...; S s (R events/s)" once the landing is done.
    landing = re.search(r"events: ([\d,]+) landed .*; ([\d.]+) s \(([\d,]+) events/s\)", done.stdout)
    names = ("events", "seconds", "events_per_second")
    figures = (
        {}
        if landing is None
        else {n: float(g.replace(",", "")) for n, g in zip(names, landing.groups(), strict=True)}
    )
    return {
        "command": " ".join(command),
        "run_s": wall,
        "run_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "landed_events": int(float(figures.get("events", 0))),
        "landing_s": float(figures.get("seconds", "nan")),
        "landing_events_per_s": float(figures.get("events_per_second", "nan")),
        "stdout": done.stdout,
    }


def _phase_evaluate(out: str, as_of: str, full: bool, memory_limit: str | None) -> dict[str, Any]:
    pipeline = _pipeline(Path(out), memory_limit)
    moment = datetime.fromisoformat(as_of).replace(tzinfo=UTC)
    if full:
        pipeline.force_full()
    timings: dict[str, float] = {}
    results = {}
    for stage in ("resolve_identities", "custom_traits", "computed_traits", "sql_traits", "audiences"):
        start = time.perf_counter()
        results[stage] = getattr(pipeline, stage)(moment)
        timings[stage] = time.perf_counter() - start
        print(f"    {stage:<20} {timings[stage]:8.1f} s   peak so far {peak_mb():7.0f} MB", flush=True)
    pipeline.close()
    return {
        "timings": timings,
        "identity_mode": results["resolve_identities"].mode,
        "audience_mode": results["audiences"].mode,
        "profiles": results["resolve_identities"].profiles,
        "recomputed": results["audiences"].recomputed,
        "sizes": {a.key: a.size for a in results["audiences"].audiences},
    }


def _phase_reference(out: str, as_of: str, memory_limit: str | None) -> dict[str, Any]:
    con = _connect(str(_paths(Path(out))["ref"]), memory_limit)
    result = run_reference(con, datetime.fromisoformat(as_of))
    con.close()
    return result


def _phase_reference_files(out: str, as_of: str, memory_limit: str | None) -> dict[str, Any]:
    paths = _paths(Path(out))
    paths["ref_files"].unlink(missing_ok=True)
    con = _connect(str(paths["ref_files"]), memory_limit)
    con.execute("SET preserve_insertion_order = true")  # keep the copy time-sorted
    start = time.perf_counter()
    con.execute(f"CREATE TABLE events AS {READ_JSON.format(glob=paths['events'] / '*.jsonl')}")
    read_s = time.perf_counter() - start
    result = run_reference(con, datetime.fromisoformat(as_of))
    result["read_json_s"] = read_s
    con.close()
    paths["ref_files"].unlink(missing_ok=True)
    return result


def _product_schema(out: Path) -> str:
    from activation_pipeline.compute.engine import default_schema
    from activation_pipeline.config import load_workspace

    return default_schema(load_workspace(str(_paths(out)["workspace"])))


def _keyed_product(schema: str, db: str = "prod") -> str:
    """SQL: the product's memberships and traits keyed by each profile's smallest anonymous id."""
    k = f"""(SELECT profile_id, min(value) AS key FROM {db}.{schema}.identities
             WHERE identifier_type = 'anonymous_id' AND profile_id IS NOT NULL GROUP BY 1)"""
    computed = ", ".join(f"c.{t}" for t in TRAITS if t != "plan")
    return f"""
        CREATE OR REPLACE TEMP TABLE p_members AS
            SELECT m.audience_key, k.key FROM {db}.{schema}.audience_membership m JOIN {k} k USING (profile_id);
        CREATE OR REPLACE TEMP TABLE p_traits AS
            SELECT k.key, {computed}, u.plan FROM {k} k
            LEFT JOIN {db}.{schema}.computed_traits c USING (profile_id)
            LEFT JOIN {db}.{schema}.custom_traits u USING (profile_id);
    """


def _trait_mismatches(a: str, b: str) -> str:
    def differs(t: str) -> str:
        x, y = f"a.{t}", f"b.{t}"
        if t in NUMERIC:
            x, y = f"TRY_CAST({x} AS DOUBLE)", f"TRY_CAST({y} AS DOUBLE)"
            return f"NOT ((({x}) IS NULL AND ({y}) IS NULL) OR abs(({x}) - ({y})) <= 1e-6 * greatest(1, abs({y})))"
        if t == "categories_30d":
            x, y = f"{x}::VARCHAR", f"{y}::VARCHAR"
        return f"({x}) IS DISTINCT FROM ({y})"

    counts = ", ".join(f"count(*) FILTER (WHERE {differs(t)}) AS {t}" for t in TRAITS)
    return f"SELECT count(*) FILTER (WHERE a.key IS NULL OR b.key IS NULL) AS missing, {counts} FROM {a} a FULL JOIN {b} b USING (key)"


def _mismatch_counts(con: Any, a: str, b: str) -> dict[str, int]:
    cursor = con.execute(_trait_mismatches(a, b))
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchall()[0], strict=True))


def _phase_compare(out: str) -> dict[str, Any]:
    """Product vs reference: memberships and trait values per profile (keyed by smallest anonymous id)."""
    paths = _paths(Path(out))
    con = _connect(str(paths["ref"]), None)
    con.execute(f"ATTACH '{paths['product']}' AS prod (READ_ONLY)")
    con.execute(_keyed_product(_product_schema(Path(out))))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE r_keys AS
        SELECT p.profile, min(s.anonymous_id) AS key FROM r_set_profile p JOIN r_sets s USING (set_hash) GROUP BY 1;
        CREATE OR REPLACE TEMP TABLE rk_members AS SELECT m.audience_key, k.key FROM r_members m JOIN r_keys k USING (profile);
        CREATE OR REPLACE TEMP TABLE rk_traits AS SELECT k.key, t.* EXCLUDE (profile) FROM r_traits t JOIN r_keys k USING (profile);
    """)
    only_product = con.execute(
        "SELECT count(*) FROM (SELECT * FROM p_members EXCEPT SELECT * FROM rk_members)"
    ).fetchall()[0][0]
    only_reference = con.execute(
        "SELECT count(*) FROM (SELECT * FROM rk_members EXCEPT SELECT * FROM p_members)"
    ).fetchall()[0][0]
    traits = _mismatch_counts(con, "p_traits", "rk_traits")
    profiles = con.execute(
        "SELECT (SELECT count(*) FROM p_traits), (SELECT count(*) FROM rk_traits)"
    ).fetchall()[0]
    con.close()
    return {
        "members_only_product": only_product,
        "members_only_reference": only_reference,
        "trait_mismatches": traits,
        "profiles_product": profiles[0],
        "profiles_reference": profiles[1],
    }


def _phase_new_events(out: str, profiles: int, memory_limit: str | None) -> dict[str, Any]:
    paths = _paths(Path(out))
    con = _connect(str(paths["ref"]), memory_limit)
    con.execute(f"CREATE OR REPLACE TEMP TABLE events AS {new_events_sql(profiles, AS_OF, 2)}")
    _write_jsonl(con, "true", paths["events"] / "part-new-0001.jsonl")
    con.close()
    pipeline = _pipeline(Path(out), memory_limit)
    summary = pipeline.land()
    pipeline.close()
    return {
        "events": summary.events,
        "landing_s": summary.seconds,
        "unchanged_files": summary.unchanged_sources,
    }


SNAPSHOT = "bench_check"


def _phase_full_again(out: str, as_of: str, memory_limit: str | None) -> dict[str, Any]:
    """Keep the incremental result, evaluate in full at the same time, and count the differences."""
    paths = _paths(Path(out))
    schema = _product_schema(Path(out))
    con = _connect(str(paths["product"]), memory_limit)
    con.execute(f"""
        CREATE SCHEMA IF NOT EXISTS {SNAPSHOT};
        CREATE OR REPLACE TABLE {SNAPSHOT}.members AS SELECT audience_key, profile_id FROM {schema}.audience_membership;
        CREATE OR REPLACE TABLE {SNAPSHOT}.traits AS
            SELECT c.*, u.plan FROM {schema}.computed_traits c FULL JOIN {schema}.custom_traits u USING (profile_id);
    """)
    con.close()
    result = _phase_evaluate(out, as_of, True, memory_limit)
    con = _connect(str(paths["product"]), memory_limit)
    members = con.execute(f"""
        SELECT (SELECT count(*) FROM (SELECT * FROM {SNAPSHOT}.members EXCEPT SELECT audience_key, profile_id FROM {schema}.audience_membership)),
               (SELECT count(*) FROM (SELECT audience_key, profile_id FROM {schema}.audience_membership EXCEPT SELECT * FROM {SNAPSHOT}.members))
    """).fetchall()[0]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE f_traits AS
            SELECT profile_id AS key, c.* EXCLUDE (profile_id), u.plan
            FROM {schema}.computed_traits c FULL JOIN {schema}.custom_traits u USING (profile_id);
        CREATE OR REPLACE TEMP TABLE i_traits AS SELECT profile_id AS key, * EXCLUDE (profile_id) FROM {SNAPSHOT}.traits;
    """)
    traits = _mismatch_counts(con, "i_traits", "f_traits")
    con.execute(f"DROP SCHEMA {SNAPSHOT} CASCADE")
    con.close()
    result["incremental_vs_full"] = {
        "members_only_incremental": members[0],
        "members_only_full": members[1],
        "trait_mismatches": traits,
    }
    return result


def _table(rows: list[tuple[str, str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {a:<{width}}  {b:>12}  {c}" for a, b, c in rows)


def main() -> None:
    """Run every phase and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--memory-limit",
        default="1200MB",
        help="DuckDB memory_limit of the in-process product phases and the reference on the typed copy "
        "(the black-box run uses the product's default compute.memory_limit, the reference from files "
        "DuckDB's default, 80%% of RAM)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument(
        "--skip-files-reference",
        action="store_true",
        help="leave out the reference from files (DuckDB read_json of every file, then the reference): at "
        "100M events it needs most of the machine's memory and time, and the black-box ratio is measured at 1M",
    )
    args = parser.parse_args()
    out = args.out / f"p{args.profiles}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _workspace_file(out)
    t1, t2 = AS_OF.isoformat(sep=" "), AS_OF_2.isoformat(sep=" ")
    o, ml = str(out), args.memory_limit
    print(
        f"compute benchmark: {args.profiles:,} profiles, {args.events:,} events, DuckDB on 2 threads",
        flush=True,
    )
    synth = run_phase("synth", _phase_synth, o, args.profiles, args.events, ml)
    box = run_phase("black box", _phase_blackbox, o, AS_OF.isoformat() + "Z")
    full = run_phase("full", _phase_evaluate, o, t1, True, ml)
    ref = run_phase("reference", _phase_reference, o, t1, ml)
    ref_files = (
        None if args.skip_files_reference else run_phase("ref files", _phase_reference_files, o, t1, None)
    )
    cmp = run_phase("compare", _phase_compare, o)
    new = run_phase("new events", _phase_new_events, o, args.profiles, ml)
    inc = run_phase("incremental", _phase_evaluate, o, t2, False, ml)
    again = run_phase("full again", _phase_full_again, o, t2, ml)

    ref_s = sum(ref["timings"].values())
    # Evaluation times are the sums of the stages (the process's start-up and imports are left out, as for
    # the reference); the black box and the reference from files are whole-process wall times.
    full_s, inc_s, again_s = (sum(r["timings"].values()) for r in (full, inc, again))
    ref_files_s = ref_files["wall_s"] if ref_files else float("nan")
    full_traits_s = sum(
        full["timings"][k] for k in ("custom_traits", "computed_traits", "sql_traits", "audiences")
    )
    ref_traits_s = ref["timings"]["traits"] + ref["timings"]["audiences"]
    check = again["incremental_vs_full"]
    same = (
        check["members_only_incremental"] == 0
        and check["members_only_full"] == 0
        and not any(check["trait_mismatches"].values())
    )
    ref_same = cmp["members_only_product"] == 0 and cmp["members_only_reference"] == 0
    figures = {
        "profiles": args.profiles,
        "events": synth["events"],
        "jsonl_files": synth["files"],
        "jsonl_bytes": synth["bytes"],
        "full_s": full_s,
        "full_stages_s": full["timings"],
        "full_peak_mb": full["peak_mb"],
        "reference_s": ref_s,
        "reference_stages_s": ref["timings"],
        "reference_peak_mb": ref["peak_mb"],
        "reference_identity": ref["identity"],
        "ratio_full_vs_reference": full_s / ref_s,
        "ratio_traits_audiences_vs_reference": full_traits_s / ref_traits_s,
        "ratio_identity_vs_reference": full["timings"]["resolve_identities"] / ref["timings"]["identity"],
        "blackbox_s": box["run_s"],
        "blackbox_peak_mb": box["run_peak_mb"],
        "blackbox_landing_s": box["landing_s"],
        "blackbox_landing_events_per_s": box["landing_events_per_s"],
        "blackbox_landed_events": box["landed_events"],
        "reference_files_s": ref_files_s,
        "reference_files_read_json_s": ref_files["read_json_s"] if ref_files else None,
        "reference_files_peak_mb": ref_files["peak_mb"] if ref_files else None,
        "ratio_blackbox_vs_reference_files": box["run_s"] / ref_files_s,
        "product_vs_reference": cmp,
        "reference_files_sizes_equal": ref_files["sizes"] == ref["sizes"] if ref_files else None,
        "new_events_landed": new["events"],
        "new_events_landing_s": new["landing_s"],
        "incremental_s": inc_s,
        "incremental_stages_s": inc["timings"],
        "incremental_peak_mb": inc["peak_mb"],
        "incremental_recomputed_profiles": inc["recomputed"],
        "full_again_s": again_s,
        "full_again_peak_mb": again["peak_mb"],
        "speedup_incremental_vs_full": again_s / inc_s,
        "incremental_vs_full": check,
        "incremental_equals_full": same,
        "audience_sizes": full["sizes"],
        "reference_audience_sizes": ref["sizes"],
        "blackbox_command": box["command"],
    }
    (out.parent / f"results_{args.profiles}.json").write_text(json.dumps(figures, indent=2, default=str))
    st = full["timings"]
    rows = [
        (
            "events (JSONL files, bytes)",
            f"{synth['events']:,}",
            f"{synth['files']} files, {synth['bytes'] / 1e9:.2f} GB",
        ),
        (
            "PRODUCT full evaluation",
            f"{full_s:.1f} s",
            f"peak {full['peak_mb']:,.0f} MB; identity {st['resolve_identities']:.1f}, custom {st['custom_traits']:.1f}, computed {st['computed_traits']:.1f}, sql {st['sql_traits']:.1f}, audiences {st['audiences']:.1f}",
        ),
        (
            "REFERENCE (typed copy + scipy)",
            f"{ref_s:.1f} s",
            f"peak {ref['peak_mb']:,.0f} MB; identity {ref['timings']['identity']:.1f}, traits {ref['timings']['traits']:.1f}, audiences {ref['timings']['audiences']:.1f}",
        ),
        (
            "  ratio full / reference",
            f"{figures['ratio_full_vs_reference']:.2f}x",
            f"identity {figures['ratio_identity_vs_reference']:.2f}x, traits+audiences {figures['ratio_traits_audiences_vs_reference']:.2f}x",
        ),
        (
            "PRODUCT black box: run --no-sync",
            f"{box['run_s']:.1f} s",
            f"peak {box['run_peak_mb']:,.0f} MB; landing {box['landing_s']:.1f} s = {box['landing_events_per_s']:,.0f} events/s",
        ),
        (
            "REFERENCE from files (read_json)",
            f"{ref_files_s:.1f} s",
            f"peak {ref_files['peak_mb']:,.0f} MB; read_json {ref_files['read_json_s']:.1f} s"
            if ref_files
            else "skipped (--skip-files-reference)",
        ),
        ("  ratio black box / reference", f"{figures['ratio_blackbox_vs_reference_files']:.2f}x", ""),
        (
            "product == reference",
            str(ref_same),
            f"members only in product {cmp['members_only_product']}, only in reference {cmp['members_only_reference']}; trait mismatches {cmp['trait_mismatches']}",
        ),
        ("landing 1% new events", f"{new['landing_s']:.1f} s", f"{new['events']:,} events"),
        (
            "PRODUCT incremental",
            f"{inc_s:.1f} s",
            f"peak {inc['peak_mb']:,.0f} MB; {inc['recomputed']:,} profiles recomputed; "
            + ", ".join(f"{k} {v:.1f}" for k, v in inc["timings"].items()),
        ),
        (
            "PRODUCT full again (same as-of)",
            f"{again_s:.1f} s",
            f"peak {again['peak_mb']:,.0f} MB; speed-up {figures['speedup_incremental_vs_full']:.1f}x",
        ),
        ("incremental == full", str(same), json.dumps(check)),
    ]
    print("\n" + _table(rows))
    print(f"\n  audience sizes: product {full['sizes']}\n                  reference {ref['sizes']}")
    print(f"  figures: {out.parent / f'results_{args.profiles}.json'}")


if __name__ == "__main__":
    main()
