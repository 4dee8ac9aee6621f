"""The shared rate limiter: several processes on one bucket never exceed the limit in any one-second window."""

import json
import subprocess
import sys
from pathlib import Path

from activation_pipeline.delivery.rate_limit import SharedRateLimiter, max_in_any_window
from activation_pipeline.state.store import StateStore

ROOT = Path(__file__).resolve().parents[2]


def test_max_in_any_window() -> None:
    assert max_in_any_window([]) == 0
    assert max_in_any_window([0.0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert max_in_any_window([0.0, 1.0, 2.0]) == 1


def test_processes_sharing_a_bucket_stay_under_the_limit(state_location: str, store: StateStore) -> None:
    """Three processes take 40 tokens each from a 50 rps bucket: the union is at most 50 in any second."""
    rate, per_process = 50, 40
    args = [
        sys.executable,
        "-m",
        "activation_pipeline_tests.test_delivery.limiter_child",
        state_location,
        "shared",
    ]
    children = [
        subprocess.Popen(
            [*args, str(rate), str(per_process)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for process in children:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in children:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    granted: list[float] = []
    for process in children:
        out, _ = process.communicate(timeout=60)
        granted += json.loads(out)
    assert len(granted) == 3 * per_process
    assert max_in_any_window(granted) <= rate
    assert max_in_any_window(granted, 0.5) <= rate / 2 + 1  # spread out, not bunched into bursts


def test_threads_in_one_process_share_the_slots(store: StateStore) -> None:
    import threading
    import time

    limiter = SharedRateLimiter(store, "threads", 40)
    granted: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(15):
            limiter.acquire()
            with lock:
                granted.append(time.time())

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 60 and max_in_any_window(granted) <= 40
