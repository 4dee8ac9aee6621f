"""Resync of a large audience to a list destination's fake server: peak memory and records per second.

The sync reads the evaluation's exported results, so this benchmark writes those files directly (an audience of
`--members` profiles, one email each) instead of evaluating events, and records a snapshot the destination
already holds (every member, plus 1% former members the resync removes). Then, each phase in a fresh process:

- `plan`: the dry run of the resync (`plan_connection`): what it would send;
- `resync`: the resync itself (`sync_destination_of_workspace`, mode resync) to Google Ads Customer Match's fake
  server, which runs in its own process so its memory is not counted; no rate limit.

Usage: `.venv/bin/python benchmarks/sync_benchmark.py --members 10000000 [--dir DIR]`. Prints each phase's
wall time and peak RSS, and the records per second of the resync.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from phases import run_phase

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
CONNECTION = "audience.everyone.google_ads"
CHUNK = 1_000_000

WORKSPACE = """\
workspace: sync-bench
sources: {events: {path: events/}}
traits:
  custom: [plan]
audiences:
  - key: everyone
    where: {event: Signed Up}
destinations:
  - id: google_ads
    type: google_ads_remarketing_lists
    settings:
      operating_account_id: "123-456-7890"
      access_token: {env: SYNC_BENCH_GOOGLE_TOKEN}
      base_url: %(url)s
      terms_of_service_accepted: true
connections:
  - source: audience:everyone
    destination: google_ads
    settings: {user_list_id: "1234"}
"""


def _workspace(directory: Path, url: str) -> Path:
    path = directory / "workspace.yml"
    path.write_text(WORKSPACE % {"url": url})
    (directory / "events").mkdir(exist_ok=True)
    return path


def prepare(directory: str, members: int) -> dict[str, Any]:
    """Write the exported results and the snapshot the destination holds before the resync."""
    from activation_pipeline.state.snapshots import baseline
    from activation_pipeline.state.store import open_state

    root = Path(directory)
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    seen = AS_OF - timedelta(days=30)
    membership = pq.ParquetWriter(
        results / "membership.parquet", pa.schema([("audience_key", pa.string()), ("profile_id", pa.int64())])
    )
    identities = pq.ParquetWriter(
        results / "identities.parquet",
        pa.schema(
            [
                ("profile_id", pa.int64()),
                ("identifier_type", pa.string()),
                ("value", pa.string()),
                ("first_seen", pa.timestamp("us", tz="UTC")),
                ("last_seen", pa.timestamp("us", tz="UTC")),
            ]
        ),
    )
    for start in range(0, members, CHUNK):
        ids = pa.array(range(start, min(members, start + CHUNK)), pa.int64())
        n = len(ids)
        membership.write_table(pa.table({"audience_key": pa.array(["everyone"] * n), "profile_id": ids}))
        identities.write_table(
            pa.table(
                {
                    "profile_id": ids,
                    "identifier_type": pa.array(["email"] * n),
                    "value": pa.array([f"user{i}@example.com" for i in range(start, start + n)]),
                    "first_seen": pa.array([seen] * n, pa.timestamp("us", tz="UTC")),
                    "last_seen": pa.array([seen] * n, pa.timestamp("us", tz="UTC")),
                }
            )
        )
    membership.close()
    identities.close()
    pq.write_table(
        pa.table({"old_profile_id": pa.array([], pa.int64()), "profile_id": pa.array([], pa.int64())}),
        results / "aliases.parquet",
    )
    (results / "as_of.txt").write_text(AS_OF.isoformat())
    store = open_state(root / "state.db")
    former = max(1, members // 100)
    held = ((str(i), True) for i in range(members + former))  # 1% former members the resync removes
    baseline(store, CONNECTION, "google_ads", held, "before")
    store.dispose()
    return {"members": members, "former": former}


def _plan(directory: str, url: str) -> dict[str, Any]:
    from activation_pipeline.config import load_workspace
    from activation_pipeline.state.store import open_state
    from activation_pipeline.sync.compute_view import ResultsView
    from activation_pipeline.sync.delta import SyncMode
    from activation_pipeline.sync.plan import plan_connection

    root = Path(directory)
    workspace = load_workspace(_workspace(root, url))
    store = open_state(root / "state.db")
    view = ResultsView(root / "results")
    plan = plan_connection(store, view, workspace, workspace.connections[0], AS_OF, SyncMode.RESYNC)
    store.dispose()
    return {"adds": plan.adds, "removes": plan.removes, "records": plan.records, "batches": plan.batches}


def _resync(directory: str, url: str) -> dict[str, Any]:
    import time

    from activation_pipeline.config import load_workspace
    from activation_pipeline.destinations.http import RetryPolicy
    from activation_pipeline.state.store import open_state
    from activation_pipeline.sync.compute_view import ResultsView
    from activation_pipeline.sync.delta import SyncMode
    from activation_pipeline.sync.runner import sync_destination_of_workspace

    root = Path(directory)
    workspace = load_workspace(_workspace(root, url))
    store = open_state(root / "state.db")
    view = ResultsView(root / "results")
    started = time.perf_counter()
    result = sync_destination_of_workspace(
        store,
        view,
        workspace,
        "google_ads",
        AS_OF,
        mode=SyncMode.RESYNC,
        retry=RetryPolicy(max_attempts=3, base_delay=0.1),
        limiter_factory=lambda _store, _destination: None,
    )
    seconds = time.perf_counter() - started
    store.dispose()
    assert result.report is not None
    return {
        "sent": result.report.sent,
        "failed": result.report.failed,
        "batches": result.report.batches,
        "sync_s": seconds,
        "records_per_s": result.report.sent / seconds if seconds else 0.0,
    }


def main() -> int:
    """Prepare, plan and resync; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="sync_bench_"))
    directory.mkdir(parents=True, exist_ok=True)
    import os

    os.environ["SYNC_BENCH_GOOGLE_TOKEN"] = "sandbox-google-token"
    fake = subprocess.Popen(
        [sys.executable, "-m", "activation_pipeline.sandbox.serve", "google_ads_remarketing_lists"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None
        url = json.loads(fake.stdout.readline())["url"]
        print(f"resync of {args.members:,} members to Google Ads' fake server ({directory})", flush=True)
        run_phase("prepare", prepare, str(directory), args.members)
        plan = run_phase("plan", _plan, str(directory), url)
        print(
            f"  plan: {plan['records']:,} records, {plan['removes']:,} removes, {plan['batches']:,} batches"
        )
        sync = run_phase("resync", _resync, str(directory), url, took="sync_s")
        print(
            f"  resync: {sync['sent']:,} sent, {sync['failed']:,} failed, {sync['batches']:,} batches, "
            f"{sync['records_per_s']:,.0f} records/s, peak {sync['peak_mb']:,.0f} MB"
        )
        if (sync["sent"], sync["batches"]) != (plan["records"], plan["batches"]):
            print("  MISMATCH: the resync did not send what the plan said", flush=True)
            return 1
    finally:
        assert fake.stdin is not None
        fake.stdin.close()
        fake.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
