"""Identity resolution benchmark (not a test): full and incremental runs, wall time and peak memory.

    .venv/bin/python benchmarks/identity_benchmark.py --profiles 1000000

Identifier sets are synthesised directly in DuckDB SQL into the compute schema's `events` and `set_keys`
tables (the layout landing writes). Per person p: an anonymous id, then user id + anonymous id, then user id +
email (+ phone for half) + anonymous id; a third of people have a second device; 5% have an older anonymous
profile that an email later merges in (a merge inside a simple component); 1% call `alias`; 0.2% share an
email with the next person (two user ids: over the user_id limit); 0.5% send a blocked email. About 20 events
per person. Each phase runs in its own process so its peak RSS (Python + DuckDB) is its own:

1. synth        the events and set keys (not timed as part of identity)
2. full         `resolve_identities` rebuilding the graph
3. new events   1% of people get events in (T, T + 1h]; half of them on a new device (new sets)
4. incremental  `resolve_identities(T + 1h)`
5. full again   a rebuild at T + 1h, checked equal to the incremental result

`--steps` prints the time and peak memory of each step of the DuckDB rebuild and the slowest SQL statements;
`--full-only` stops after phase 2; `--reuse` starts again from the events of an earlier run. The machine may be
shared: compare runs back to back.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from phases import run_phase

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AS_OF = datetime(2026, 11, 1)
AS_OF_2 = AS_OF + timedelta(hours=1)
SCHEMA = "bench"
WORKSPACE = """
workspace: bench
sources:
  events: {path: events/}
identity:
  identifiers:
    user_id: {limit: 1}
    email: {limit: 5}
    phone: {limit: 3}
    anonymous_id: {}
  blocked_values: [test@example.com]
"""


def _engine(db: str, memory_limit: str) -> Any:
    from activation_pipeline.compute.engine import ComputeEngine

    settings = {"threads": "2", "memory_limit": memory_limit, "preserve_insertion_order": "false"}
    return ComputeEngine(f"duckdb:///{db}", SCHEMA, duckdb_settings=settings)


def _workspace() -> Any:
    from activation_pipeline.config import validate_text

    workspace, problems = validate_text(WORKSPACE, base_dir=ROOT / "benchmarks")
    assert workspace is not None, problems
    return workspace


def _pair(kind: str, value: str) -> str:
    return f"""'["{kind}","' || {value} || '"]'"""


def _ids(*pairs: str) -> str:
    return "'[' || " + " || ',' || ".join(pairs) + " || ']'"


def sets_sql(profiles: int) -> str:
    """SQL selecting the synthetic identifier sets: (ids JSON, first time, events, batch)."""
    span = 180 * 86_400_000_000
    u, a, e = "'u' || p", "'a' || p", "'e' || p || '@x.io'"
    ph = "'+1555' || p"
    hour = "INTERVAL 1 HOUR"
    rows = [
        (_ids(_pair("anonymous_id", a)), "t0", 7, "TRUE"),
        (_ids(_pair("user_id", u), _pair("anonymous_id", a)), f"t0 + {hour}", 9, "TRUE"),
        (
            _ids(_pair("user_id", u), _pair("email", e), _pair("phone", ph), _pair("anonymous_id", a)),
            f"t0 + 2 * {hour}",
            2,
            "p % 2 = 0",
        ),
        (
            _ids(_pair("user_id", u), _pair("email", e), _pair("anonymous_id", a)),
            f"t0 + 2 * {hour}",
            2,
            "p % 2 = 1",
        ),
        (_ids(_pair("anonymous_id", "'b' || p")), f"t0 + 3 * {hour}", 2, "p % 3 = 0"),
        (_ids(_pair("user_id", u), _pair("anonymous_id", "'b' || p")), f"t0 + 4 * {hour}", 2, "p % 3 = 0"),
        (_ids(_pair("anonymous_id", "'c' || p")), f"t0 - {hour}", 1, "p % 20 = 1"),
        (_ids(_pair("email", e), _pair("anonymous_id", "'c' || p")), f"t0 + 5 * {hour}", 1, "p % 20 = 1"),
        (
            _ids(_pair("email", e), _pair("anonymous_id", "'a' || (p + 1)")),
            f"t0 + 6 * {hour}",
            1,
            f"p % 500 = 7 AND p + 1 < {profiles}",
        ),
        (_ids(_pair("anonymous_id", "'d' || p")), f"t0 - 2 * {hour}", 1, "p % 100 = 2"),
        (_ids(_pair("user_id", u), _pair("previous_id", "'d' || p")), f"t0 + 7 * {hour}", 1, "p % 100 = 2"),
        (
            _ids(_pair("user_id", u), _pair("email", "'test@example.com'")),
            f"t0 + 8 * {hour}",
            1,
            "p % 200 = 4",
        ),
    ]
    people = (
        f"SELECT range AS p, TIMESTAMP '{AS_OF}' - INTERVAL 15 DAY - to_microseconds((hash(range * 7) % {span})::BIGINT) "
        f"AS t0, (hash(range * 13) % 24)::INT AS gap FROM range({profiles})"
    )
    parts = [
        f"SELECT p, {ids} AS ids, {ts} AS ts, {n} AS n, gap FROM people WHERE {cond}"
        for ids, ts, n, cond in rows
    ]
    return f"WITH people AS ({people}) " + " UNION ALL ".join(parts)


def _events_from(sets: str, batch: int, spacing: str) -> list[str]:
    s = SCHEMA
    return [
        f"CREATE OR REPLACE TEMP TABLE syn AS SELECT *, ('0x' || substr(md5(ids), 1, 15))::BIGINT AS set_hash FROM ({sets})",
        f"""
        INSERT INTO {s}.events (message_id, type, timestamp, received_at, source, line, batch, set_hash)
        SELECT 'm{batch}_' || row_number() OVER (), 'track', ts + j * {spacing}, ts + j * {spacing},
               'synthetic_{batch}', row_number() OVER (), {batch}, set_hash
        FROM syn, range(n) r(j) ORDER BY 3
        """,
        f"""
        INSERT INTO {s}.identifier_sets
        SELECT DISTINCT set_hash, ids FROM syn WHERE set_hash NOT IN (SELECT set_hash FROM {s}.identifier_sets)
        """,
        f"""
        INSERT INTO {s}.set_keys
        SELECT set_hash, pos - 1, l[pos][1], l[pos][2]
        FROM (SELECT DISTINCT set_hash, from_json(ids, '[["VARCHAR"]]') AS l FROM syn
              WHERE set_hash NOT IN (SELECT set_hash FROM {s}.set_keys)), range(1, len(l) + 1) r(pos)
        """,
    ]


def _landed(batch: int) -> str:
    return (
        f"INSERT INTO {SCHEMA}.landed_sources (source, batch, events, quarantined, landed_at) "
        f"VALUES ('synthetic_{batch}', {batch}, 0, 0, now()::TIMESTAMP)"
    )


def synth_sql(profiles: int) -> list[str]:
    """SQL filling events, set keys and one landing for `profiles` people."""
    return [
        *_events_from(sets_sql(profiles), 1, "to_microseconds(gap * 3600000000::BIGINT)"),
        _landed(1),
    ]


def new_events_sql(profiles: int) -> list[str]:
    """SQL adding events for 1% of people in (T, T + 1h], half of them on a new device, as batch 2."""
    changed = max(1, profiles // 100)
    u = "'u' || p"
    sets = f"""
        WITH who AS (SELECT DISTINCT (hash(i * 101 + 2) % {profiles})::BIGINT AS p,
                            TIMESTAMP '{AS_OF}' + to_microseconds(1 + (hash(i * 7 + 5) % 3000000000)::BIGINT) AS ts
                     FROM range({changed}) t(i))
        SELECT p, {_ids(_pair("user_id", u), _pair("anonymous_id", "'a' || p"))} AS ids, ts, 4 AS n FROM who
        UNION ALL
        SELECT p, {_ids(_pair("user_id", u), _pair("anonymous_id", "'f' || p"))}, ts, 2 FROM who WHERE p % 2 = 0
        UNION ALL
        SELECT p, {_ids(_pair("email", "'e' || p || '@x.io'"), _pair("anonymous_id", "'g' || p"))}, ts, 1
        FROM who WHERE p % 7 = 0
    """
    return [
        *_events_from(sets, 2, "INTERVAL 1 SECOND"),
        _landed(2),
    ]


# ------------------------------------------------------------------------------------------ phases


def _phase_sql(db: str, statements: list[str], memory_limit: str) -> dict[str, Any]:
    engine = _engine(db, memory_limit)
    with engine.begin() as conn:
        for sql in statements:
            conn.exec_driver_sql(sql)
        events = conn.exec_driver_sql(f"SELECT count(*) FROM {SCHEMA}.events").scalar()
        sets = conn.exec_driver_sql(f"SELECT count(DISTINCT set_hash) FROM {SCHEMA}.events").scalar()
    engine.dispose()
    return {"events": events, "sets": sets}


def _time_statements(engine: Any) -> list[tuple[float, str]]:
    """Record (seconds, statement) for every statement the engine runs (DuckDB runs them synchronously)."""
    import sqlalchemy as sa

    timings: list[tuple[float, str]] = []

    @sa.event.listens_for(engine.engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("_t0", []).append(time.perf_counter())

    @sa.event.listens_for(engine.engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        timings.append((time.perf_counter() - conn.info["_t0"].pop(), " ".join(statement.split())))

    return timings


def _phase_identity(
    db: str, as_of: str, full: bool, memory_limit: str, steps: bool = False
) -> dict[str, Any]:
    from activation_pipeline.compute import state
    from activation_pipeline.compute.identity import resolve_identities

    engine = _engine(db, memory_limit)
    timings = _time_statements(engine) if steps else []
    if steps:
        import logging

        logging.basicConfig(format="    %(message)s")
        logging.getLogger("activation_pipeline.compute.identity_components").setLevel(logging.DEBUG)
    if full:
        with engine.begin() as conn:
            state.set_flag(conn, engine.tables, state.IDENTITY_NEEDS_FULL, True)
    start = time.perf_counter()
    summary = resolve_identities(engine, _workspace(), datetime.fromisoformat(as_of))
    seconds = time.perf_counter() - start
    if steps:
        shown = sorted(timings, reverse=True)[:25]
        print(f"    statements: {len(timings)}, {sum(t for t, _ in timings):.1f} s in SQL; slowest:")
        for took, sql in shown:
            print(f"    {took:6.2f} s  {sql[:150]}")
    s = SCHEMA
    with engine.begin() as conn:
        checksum = [
            list(
                conn.exec_driver_sql(
                    f"SELECT count(*), sum(hash(identifier_type, value, profile_id, first_seen, last_seen) % 1000003) "
                    f"FROM {s}.identities"
                ).one()
            ),
            list(
                conn.exec_driver_sql(
                    f"SELECT count(*), sum(hash(set_hash, profile_id, first_seen, last_seen) % 1000003) "
                    f"FROM {s}.identity_sets"
                ).one()
            ),
            list(
                conn.exec_driver_sql(
                    f"SELECT count(*), sum(hash(profile_id, created_at) % 1000003) FROM {s}.profiles"
                ).one()
            ),
            list(
                conn.exec_driver_sql(
                    f"SELECT count(*), sum(hash(old_profile_id, profile_id) % 1000003) FROM {s}.profile_aliases"
                ).one()
            ),
        ]
    engine.dispose()
    return {"identity_s": seconds, "summary": summary.__dict__, "checksum": checksum}


def main() -> None:
    """Run every phase and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--memory-limit", default="1200MB", help="DuckDB memory_limit (it spills beyond it)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--reuse", action="store_true", help="reuse the events synthesised by an earlier run")
    parser.add_argument("--skip-full-again", action="store_true", help="do not check incremental == full")
    parser.add_argument("--steps", action="store_true", help="print the slowest SQL statements of each run")
    parser.add_argument("--full-only", action="store_true", help="stop after the first full run")
    args = parser.parse_args()
    out = args.out / f"identity_p{args.profiles}"
    db = str(out / "compute.duckdb")
    base = str(out / "base.duckdb")
    print(f"identity benchmark: {args.profiles:,} profiles, DuckDB on 2 threads", flush=True)
    if not (args.reuse and Path(base).exists()):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        synth = run_phase("synth", _phase_sql, db, synth_sql(args.profiles), args.memory_limit)
        shutil.copyfile(db, base)
    else:
        shutil.copyfile(base, db)
        synth = run_phase("reuse", _phase_sql, db, [], args.memory_limit)
    print(f"  {synth['events']:,} events, {synth['sets']:,} identifier sets", flush=True)
    t1, t2 = AS_OF.isoformat(sep=" "), AS_OF_2.isoformat(sep=" ")
    full = run_phase("full", _phase_identity, db, t1, True, args.memory_limit, args.steps, took="identity_s")
    print(f"    {full['summary']}", flush=True)
    if args.full_only:
        print(f"figures: full {full['identity_s']:.1f} s ({full['peak_mb']:.0f} MB)")
        return
    run_phase("new events", _phase_sql, db, new_events_sql(args.profiles), args.memory_limit)
    incremental = run_phase(
        "incremental", _phase_identity, db, t2, False, args.memory_limit, args.steps, took="identity_s"
    )
    print(f"    {incremental['summary']}", flush=True)
    if not args.skip_full_again:
        again = run_phase("full again", _phase_identity, db, t2, True, args.memory_limit, took="identity_s")
        same = again["checksum"] == incremental["checksum"]
        print(f"  incremental == full: {same}", flush=True)
        if not same:
            print(f"    incremental {incremental['checksum']}\n    full        {again['checksum']}")
    print(
        f"figures: full {full['identity_s']:.1f} s ({full['peak_mb']:.0f} MB), "
        f"incremental {incremental['identity_s']:.1f} s ({incremental['peak_mb']:.0f} MB)"
    )


if __name__ == "__main__":
    main()
