"""Profile API benchmark (not a test): a real HTTP load generator against `activation-pipeline serve`.

    .venv/bin/python benchmarks/profile_api_benchmark.py                                   # 1M profiles
    .venv/bin/python benchmarks/profile_api_benchmark.py --profiles 100000 --events 1000000 --seconds 10
    .venv/bin/python benchmarks/profile_api_benchmark.py --reuse                           # skip 1-2

1. synth     compute_benchmark's events (one identify per profile: user id, anonymous id, email, plan;
             tracks over 180 days) written as JSONL                                          (not timed)
2. prepare   the product lands them and evaluates (full), then publishes the serving copy: timed apart
3. serve     `activation-pipeline serve` in its own process (uvicorn), access token from the environment
4. load      for each rate, an open-loop generator sends GETs at exactly that rate for `--seconds`
             over keep-alive connections (a new connection when all are busy), and measures each latency
             from the moment the request was due, so a slow server cannot hide its queue (no coordinated
             omission). Requests: 60% /traits, 10% /traits?class=audience, 10% /external_ids, 15% /events,
             5% /links; identifiers are user ids, anonymous ids and emails written in mixed case
             (normalised by the service), of random profiles; 2% are unknown (404)
5. limit     one more run at 150 requests/s with the service's default limit (Segment's 100/s per token):
             how many answers are 429

The token's limit is raised for step 4 (`serving.requests_per_second`), so the figures are the service's,
not the limiter's. Figures are printed and written to benchmarks/out/profile_api_<profiles>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compute_benchmark import AS_OF, _paths, _phase_synth, _workspace_file
from phases import run_phase

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN_ENV = "PROFILE_API_BENCH_TOKEN"
PG_URL = os.environ.get("ACTIVATION_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
PG_SCHEMA = "profile_api_bench"
SPACE = "spa_bench"
SERVING_YAML = """
space_id: spa_bench
serving:
  tokens: [{name: bench, token: {env: PROFILE_API_BENCH_TOKEN}}]
  requests_per_second: %s
"""


def _write_workspace(out: Path, requests_per_second: float) -> Path:
    path = _workspace_file(out)
    path.write_text(path.read_text() + SERVING_YAML % requests_per_second)
    return path


def _phase_prepare(out: str, as_of: str, evaluate: bool) -> dict[str, Any]:
    from activation_pipeline.compute.pipeline import ComputePipeline
    from activation_pipeline.config import load_workspace
    from activation_pipeline.serving.publish import publish_serving_copy, serving_directory

    workspace = load_workspace(str(_paths(Path(out))["workspace"]))
    pipeline = ComputePipeline(workspace)
    moment = datetime.fromisoformat(as_of).replace(tzinfo=UTC)
    timings: dict[str, float] = {}
    if evaluate:
        start = time.perf_counter()
        pipeline.land()
        timings["land_s"] = time.perf_counter() - start
        pipeline.force_full()
        start = time.perf_counter()
        for stage in ("resolve_identities", "custom_traits", "computed_traits", "sql_traits", "audiences"):
            getattr(pipeline, stage)(moment)
        timings["evaluate_s"] = time.perf_counter() - start
    start = time.perf_counter()
    publication = publish_serving_copy(pipeline.engine, workspace, moment.replace(tzinfo=None))
    timings["publish_s"] = time.perf_counter() - start
    pipeline.close()
    directory = serving_directory(workspace)
    size = (directory / f"v{publication.version}.duckdb").stat().st_size
    return {
        **timings,
        "profiles": publication.profiles,
        "identifiers": publication.identifiers,
        "serving_events": publication.events,
        "serving_mb": size / 1e6,
    }


def _phase_copy_to_postgres(out: str) -> dict[str, Any]:
    """The published DuckDB serving copy, copied as version 1 of the PostgreSQL layout (tables `srv1_*` and the
    pointer row in PG_SCHEMA, the same indexes), so the product's PostgreSQL reader serves the same data."""
    import duckdb
    import pyarrow as pa
    import sqlalchemy as sa

    from activation_pipeline.compute.engine import load_arrow
    from activation_pipeline.config import load_workspace
    from activation_pipeline.serving.layout import pointer_table, serving_tables, table_prefix
    from activation_pipeline.serving.publish import create_indexes, read_pointer_file, serving_directory

    directory = serving_directory(load_workspace(str(_paths(Path(out))["workspace"])))
    pointer = read_pointer_file(directory)
    assert pointer is not None, "publish first"
    source = duckdb.connect(str(directory / str(pointer["file"])), read_only=True)
    engine = sa.create_engine(PG_URL)
    tables = serving_tables(1, PG_SCHEMA, table_prefix(1, on_duckdb=False))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {PG_SCHEMA}"))
        tables.lookup.metadata.create_all(conn)
    start = time.perf_counter()
    rows = 0
    for table in tables.lookup.metadata.sorted_tables:
        batches = source.execute(f"SELECT * FROM {table.name.removeprefix('srv1_')}").to_arrow_reader(200_000)
        for batch in batches:
            with engine.begin() as conn:
                rows += load_arrow(conn, table, pa.Table.from_batches([batch]))
    with engine.begin() as conn:
        create_indexes(conn, tables)
        for table in tables.lookup.metadata.sorted_tables:
            conn.execute(sa.text(f"ANALYZE {PG_SCHEMA}.{table.name}"))
        pointer_table(PG_SCHEMA).create(conn)
        as_of = datetime.fromisoformat(str(pointer["as_of"]))
        conn.execute(sa.insert(pointer_table(PG_SCHEMA)).values(version=1, as_of=as_of, published_at=as_of))
    engine.dispose()
    return {"rows": rows, "copy_s": time.perf_counter() - start}


def _postgres_workspace(out: Path, requests_per_second: float) -> Path:
    path = _write_workspace(out, requests_per_second)
    text = path.read_text().replace(
        "  engine: duckdb\n  path: product.duckdb",
        f"  engine: postgres\n  url: {PG_URL}\n  schema: {PG_SCHEMA}",
    )
    pg_path = out / "workspace_pg.yml"
    pg_path.write_text(text)
    return pg_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(workspace: Path, token: str, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    """`activation-pipeline serve` in its own process; returns it and its port once it accepts connections."""
    port = _free_port()
    command = [
        str(ROOT / ".venv" / "bin" / "activation-pipeline"),
        "serve",
        str(workspace),
        "--port",
        str(port),
    ]
    log = open(workspace.parent / "serve.log", "wb")  # noqa: SIM115 (the child writes it until it stops)
    process = subprocess.Popen(command, env={**os.environ, TOKEN_ENV: token}, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"serve exited with {process.returncode}; see {log.name}") from None
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("serve did not start in 60 s")


def request_paths(profiles: int, count: int, seed: int = 11) -> list[str]:
    """The request mix: mostly traits, by user id, anonymous id or mixed-case email; 2% unknown."""
    rng = random.Random(seed)
    prefix = f"/v1/spaces/{SPACE}/collections/users/profiles/"
    paths = []
    for _ in range(count):
        p = rng.randrange(profiles)
        identifier = rng.choice([f"user_id:u{p}", f"anonymous_id:a{p}", f"email:U{p}@Example.COM"])
        if rng.random() < 0.02:
            identifier = f"user_id:nobody{p}"
        r = rng.random()
        resource = (
            "traits?limit=50" if r < 0.6 else "traits?class=audience" if r < 0.7 else
            "external_ids" if r < 0.8 else "events?limit=10" if r < 0.95 else "links"
        )  # fmt: skip
        paths.append(prefix + identifier + "/" + resource)
    return paths


class Client:
    """Up to `MAX_CONNECTIONS` keep-alive HTTP/1.1 connections to one host; a request takes an idle one, opens
    another while under the cap, else waits for one (its latency still counts from when it was due)."""

    MAX_CONNECTIONS = 256

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.auth = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.opened = 0
        self.reconnects = 0

    async def get(self, path: str) -> int:
        """Send one GET and read the whole answer; its status (0: the connection failed twice). A kept-alive
        connection the server has closed meanwhile is replaced once (GET is idempotent), as clients do."""
        for attempt in range(2):
            try:
                return await self._get(path, fresh=attempt > 0)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.reconnects += 1
        return 0

    async def _connection(self, fresh: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not fresh and (not self.idle.empty() or self.opened >= self.MAX_CONNECTIONS):
            return await self.idle.get()
        self.opened += 1
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def _get(self, path: str, fresh: bool) -> int:
        reader, writer = await self._connection(fresh)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {self.auth}\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            length = next(
                int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
            )
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            self.opened -= 1
            raise
        self.idle.put_nowait((reader, writer))
        return status

    def close(self) -> None:
        """Close every idle connection."""
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()


async def _open_loop(port: int, token: str, paths: list[str], rate: float) -> dict[str, Any]:
    client = Client(port, token)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2

    async def one(path: str, due: float) -> None:
        status = await client.get(path)
        latencies.append(loop.time() - due)
        statuses[status] = statuses.get(status, 0) + 1

    tasks = []
    for i, path in enumerate(paths):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(path, due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    client.close()
    latencies.sort()
    quantile = statistics.quantiles(latencies, n=1000, method="inclusive")
    return {
        "target_rps": rate,
        "requests": len(paths),
        "achieved_rps": len(paths) / elapsed,
        "p50_ms": quantile[499] * 1000,
        "p90_ms": quantile[899] * 1000,
        "p99_ms": quantile[989] * 1000,
        "max_ms": latencies[-1] * 1000,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "connections": client.opened,
        "reconnects": client.reconnects,
        "load_average": os.getloadavg()[0],
    }


def load(port: int, token: str, profiles: int, rate: float, seconds: float) -> dict[str, Any]:
    """Send `rate` requests per second for `seconds`; throughput, latency quantiles and statuses."""
    paths = request_paths(profiles, int(rate * seconds), seed=int(rate))
    return asyncio.run(_open_loop(port, token, paths, rate))


def _run_service(
    workspace: Path, token: str, profiles: int, rates: list[float], seconds: float, workers: int = 1
) -> list[dict[str, Any]]:
    process, port = start_service(workspace, token, workers)
    try:
        load(port, token, profiles, 100, 3)  # warm up: open the version, fill caches
        results = []
        for rate in rates:
            result = load(port, token, profiles, rate, seconds)
            print(
                f"  {rate:6.0f} rps: achieved {result['achieved_rps']:7.1f}/s, p50 {result['p50_ms']:6.2f} ms, "
                f"p90 {result['p90_ms']:6.2f} ms, p99 {result['p99_ms']:6.2f} ms, max {result['max_ms']:7.1f} ms, "
                f"statuses {result['statuses']}, {result['connections']} connections, load average "
                f"{result['load_average']:.1f}",
                flush=True,
            )
            results.append(result)
        return results
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still draining a queue it could not keep up with
            process.kill()
            process.wait()


def main() -> None:
    """Prepare the data, serve it and load it; print and save the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--rates", default="100,500,1000")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--reuse", action="store_true", help="serve what an earlier run prepared")
    parser.add_argument(
        "--republish", action="store_true", help="with --reuse: publish the serving copy again"
    )
    parser.add_argument("--workers", type=int, default=1, help="service processes")
    parser.add_argument(
        "--postgres", action="store_true", help="also serve the copy from PostgreSQL (PG_URL)"
    )
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "out" / f"profile_api_{args.profiles}"
    token = base64.b32encode(os.urandom(20)).decode()
    rates = [float(r) for r in args.rates.split(",")]
    figures: dict[str, Any] = {
        "profiles": args.profiles,
        "events": args.events,
        "seconds": args.seconds,
        "workers": args.workers,
    }
    print(f"Profile API benchmark: {args.profiles:,} profiles, {args.events:,} events", flush=True)
    if not args.reuse:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        figures["synth"] = run_phase("synth", _phase_synth, str(out), args.profiles, args.events, None)
        _write_workspace(out, max(rates) * 4)
    if not args.reuse or args.republish:
        figures["prepare"] = run_phase("prepare", _phase_prepare, str(out), AS_OF.isoformat(), not args.reuse)
        prepared = figures["prepare"]
        print(
            f"    land {prepared.get('land_s', 0):.1f} s, evaluate {prepared.get('evaluate_s', 0):.1f} s, publish "
            f"{prepared['publish_s']:.1f} s: {prepared['profiles']:,} profiles, {prepared['identifiers']:,} "
            f"lookup keys, {prepared['serving_events']:,} events, {prepared['serving_mb']:.0f} MB",
            flush=True,
        )
    workspace = _write_workspace(out, max(rates) * 4)
    print("  load (limit raised)", flush=True)
    figures["load"] = _run_service(workspace, token, args.profiles, rates, args.seconds, args.workers)
    if args.postgres:
        figures["postgres_copy"] = run_phase("pg copy", _phase_copy_to_postgres, str(out))
        print("  load from PostgreSQL (limit raised)", flush=True)
        pg_workspace = _postgres_workspace(out, max(rates) * 4)
        figures["load_postgres"] = _run_service(
            pg_workspace, token, args.profiles, rates, args.seconds, args.workers
        )
    workspace = _write_workspace(out, 100)
    print("  limit (Segment's 100/s per token)", flush=True)
    figures["limit"] = _run_service(
        workspace, token, args.profiles, [150], min(args.seconds, 10), args.workers
    )
    (out.parent / f"profile_api_{args.profiles}.json").write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
