"""Rate-limit benchmark: a local webhook sandbox is driven at 100 and 500 requests per second for about 10 s
each, through the shared (state-store backed) rate limiter, in two modes:

- `limiter`: worker threads sending one message per request through `HttpSender` and the limiter (what the
  rate limit itself achieves);
- `engine`: the whole delivery path (`deliver`: outbox, batches, ledger, snapshots), one message per request.

The sandbox runs in its own process (so it does not share our interpreter lock) and timestamps every request
on arrival; from those we print the achieved rate (target: at least 95% of the limit) and the highest count
in any one-second window (must not exceed the limit).

Usage: .venv/bin/python benchmarks/rate_limit_benchmark.py [--seconds 10] [--rates 100 500]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

from activation_pipeline.activation.model import Change, ChangeKind, IdentifierValue, ProfileView
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.config.models import Connection
from activation_pipeline.delivery.rate_limit import SharedRateLimiter, max_in_any_window
from activation_pipeline.delivery.sync import sync_destination
from activation_pipeline.destinations.http import HttpSender
from activation_pipeline.destinations.webhook.settings import WebhookDestination
from activation_pipeline.state.store import StateStore, open_state

AS_OF = datetime(2024, 6, 1, tzinfo=UTC)


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    """A webhook sandbox in a child process; returns it and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "activation_pipeline.sandbox.serve", "webhook"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())["url"]


def planned(count: int) -> list:  # type: ignore[type-arg]
    """`count` audience entries, one identify message each."""
    connection = Connection.model_validate({"source": "audience:bench", "destination": "hook"})
    changes = [
        Change(
            ChangeKind.ENTERED,
            ProfileView(f"p{i}", (IdentifierValue("user_id", f"u{i}", AS_OF),)),
            AS_OF,
        )
        for i in range(count)
    ]
    return plan_changes(changes, connection, kind="event", space="bench")


def drive_limiter(store: StateStore, limiter: SharedRateLimiter, url: str, total: int, workers: int) -> int:
    """Worker threads each send messages through HttpSender + the limiter until `total` are sent."""
    sender = HttpSender(url, rate_limiter=limiter, pool_size=workers)
    remaining = iter(range(total))
    lock = threading.Lock()
    sent = [0]

    def work() -> None:
        while True:
            with lock:
                index = next(remaining, None)
            if index is None:
                return
            message = {
                "type": "identify",
                "messageId": f"m{index}",
                "timestamp": "2024-06-01T00:00:00Z",
                "userId": f"u{index}",
            }
            if sender.post_json("/hook", message).verdict == "ok":
                with lock:
                    sent[0] += 1

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sender.close()
    del store
    return sent[0]


def drive_engine(store: StateStore, limiter: SharedRateLimiter, url: str, total: int, workers: int) -> int:
    """The product's delivery path (`sync_destination`, its default senders) sends `total` single-message
    requests to a webhook in single mode."""
    destination = WebhookDestination.model_validate(
        {
            "id": "hook",
            "type": "webhook",
            "settings": {"url": f"{url}/hook", "batch_size": 200},
            "rate_limit": {"requests_per_second": limiter.rate, "max_concurrent": workers},
        }
    )
    report = sync_destination(
        store, destination, planned(total), [], limiter_factory=lambda _store, _destination: limiter
    )
    return report.sent


def run(mode: str, rate: int, seconds: float, workers: int) -> dict[str, float | str]:
    """Send `rate * seconds` single-message requests at `rate` rps; figures measured at the sandbox."""
    sandbox, url = start_sandbox()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = open_state(Path(tmp) / "state.db")
            limiter = SharedRateLimiter(store, f"bench_{rate}", rate)
            drive = drive_limiter if mode == "limiter" else drive_engine
            started = time.time()
            sent = drive(store, limiter, url, int(rate * seconds), workers)
            elapsed = time.time() - started
            limiter.close()
            store.dispose()
        arrivals = [r["received_at"] for r in requests.get(f"{url}/__sandbox/requests", timeout=30).json()]
    finally:
        assert sandbox.stdin is not None
        sandbox.stdin.close()
        sandbox.wait(timeout=10)
    span = max(arrivals) - min(arrivals)
    achieved = (len(arrivals) - 1) / span if span > 0 else 0.0
    return {
        "mode": mode,
        "limit": rate,
        "requests": len(arrivals),
        "sent": sent,
        "span_seconds": round(span, 2),
        "achieved_rps": round(achieved, 1),
        "achieved_share": round(achieved / rate, 3),
        "max_in_any_1s_window": max_in_any_window(arrivals),
        "wall_seconds": round(elapsed, 2),
        "dropped_slots": limiter.dropped,
    }


def main() -> int:
    """Run the benchmark at each rate and print one line per rate plus a verdict."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--modes", nargs="+", choices=["limiter", "engine"], default=["limiter", "engine"])
    args = parser.parse_args()
    ok = True
    for mode in args.modes:
        for rate in args.rates:
            figures = run(mode, rate, args.seconds, args.workers)
            passed = float(figures["achieved_share"]) >= 0.95 and int(figures["max_in_any_1s_window"]) <= rate
            ok = ok and passed
            print(
                f"{mode:<7} limit {rate:>4} rps: achieved {figures['achieved_rps']:>6.1f} rps "
                f"({figures['achieved_share']:.1%} of limit) over {figures['span_seconds']} s, "
                f"{figures['requests']} requests, highest in any 1 s window {figures['max_in_any_1s_window']} "
                f"-> {'OK' if passed else 'MISSED'}"
            )
            print("  " + json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
