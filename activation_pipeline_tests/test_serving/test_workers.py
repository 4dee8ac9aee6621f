"""Several service processes: they share each token's rate limit through one file, and `serve --workers`
answers from all of them."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from activation_pipeline.serving.access import RateLimiter
from activation_pipeline_tests.test_serving.conftest import SPACE, TOKEN, TOKEN_ENV, evaluated, free_port


def _allowed(path: str, count: int, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    limiter = RateLimiter(5, ["app", "other"], Path(path))
    queue.put(sum(limiter.allow("app") == 0 for _ in range(count)))
    limiter.close()


def test_processes_share_one_bucket_per_token(tmp_path: Path) -> None:
    path = str(tmp_path / "limits")
    context = mp.get_context("spawn")
    queue = context.Queue()
    started = time.monotonic()
    workers = [context.Process(target=_allowed, args=(path, 10, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    allowed = queue.get(timeout=60) + queue.get(timeout=60)
    for worker in workers:
        worker.join()
    refilled = math.ceil((time.monotonic() - started) * 5)
    assert 5 <= allowed <= 5 + refilled, (allowed, refilled)
    other = RateLimiter(5, ["app", "other"], Path(path))
    assert other.allow("other") == 0  # another token's bucket is its own
    other.close()


TWO_WORKERS = f"""
serving:
  tokens: [{{name: app, token: {{env: {TOKEN_ENV}}}}}]
  requests_per_second: 5
  workers: 2
"""


def test_serve_with_two_workers_answers_and_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    _, pipeline, _, _ = evaluated(tmp_path, "duckdb", TWO_WORKERS)
    pipeline.close()
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "activation_pipeline.cli",
        "serve",
        str(tmp_path / "workspace.yml"),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180  # a busy machine: starting Python and two workers takes a while
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/v1/spaces/{SPACE}/collections/users/profiles/phone:(201) 555-0123/traits"
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: requests.get(url, auth=(TOKEN, ""), timeout=30), range(30)))
        refilled = math.ceil((time.monotonic() - started) * 5)
        statuses = [a.status_code for a in answers]
        assert 5 <= statuses.count(200) <= 5 + refilled, statuses
        assert statuses.count(200) + statuses.count(429) == 30, statuses
        assert next(a for a in answers if a.status_code == 200).json()["traits"]["first_name"] == "Jane"
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0].decode()
    assert output.count("Started server process") == 2, output
