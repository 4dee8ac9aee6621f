"""A sync run in a child process, for the crash tests: killed by SIGKILL after batch N when asked.

Usage: python -m activation_pipeline_tests.test_delivery.kill_child STATE HOOK_URL COUNT BATCH KILL_AFTER [RPS]
(KILL_AFTER 0: never; RPS 0: no rate limit; the webhook runs in single mode when RPS is given).
"""

import os
import signal
import sys

from activation_pipeline.delivery.engine import deliver
from activation_pipeline.delivery.rate_limit import SharedRateLimiter
from activation_pipeline.destinations.base import BatchResult
from activation_pipeline.destinations.http import ClientOptions
from activation_pipeline.destinations.registry import build_client
from activation_pipeline.state.store import open_state
from activation_pipeline_tests.test_delivery.workload import webhook_destination, workload


def main() -> None:
    state, url, count, batch, kill_after = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
        int(sys.argv[5]),
    )
    rps = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    store = open_state(state)
    limiter = SharedRateLimiter(store, "hook", rps) if rps else None
    client = build_client(webhook_destination(url, batch=not rps), ClientOptions(rate_limiter=limiter))

    def after_batch(seq: int, _result: BatchResult) -> None:
        if seq == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    report = deliver(
        store,
        client,
        destination_id="hook",
        planned=workload(count),
        batch_size=batch,
        after_batch=after_batch,
    )
    print(report.sent, report.recovered)


if __name__ == "__main__":
    main()
