"""A sync run really killed (SIGKILL) between batches or at a random moment, then run again: everything is
delivered, with the same messageIds, and no record acknowledged before the kill is sent again."""

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline.state.schema import delivery_ledger
from activation_pipeline.state.store import open_state
from activation_pipeline_tests.test_delivery.workload import workload

ROOT = Path(__file__).resolve().parents[2]


def child(
    state: str, url: str, count: int, batch: int, kill_after: int = 0, rps: float = 0
) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "activation_pipeline_tests.test_delivery.kill_child", state, url]
    args += [str(count), str(batch), str(kill_after), str(rps)]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def acknowledged_in_ledger(state: str) -> set[str]:
    store = open_state(state)
    try:
        with store.read() as db:
            query = sa.select(delivery_ledger.c.record_id).where(delivery_ledger.c.outcome == "acknowledged")
            return set(db.execute(query).scalars())
    finally:
        store.dispose()


def accepted_ids(sandbox: WebhookSandbox, start: int = 0) -> list[str]:
    ids: list[str] = []
    for request in sandbox.requests[start:]:
        if 200 <= request.status < 300:
            body = request.json()
            ids += [m["messageId"] for m in (body if isinstance(body, list) else [body])]
    return ids


def test_kill_between_batches_then_rerun(state_location: str) -> None:
    expected = [r.record_id for p in workload(20) for r in p.records]  # 40 records, 8 batches of 5
    with WebhookSandbox() as sandbox:
        first = child(state_location, sandbox.hook_url, 20, 5, kill_after=3)
        _, err = first.communicate(timeout=60)
        assert first.returncode == -signal.SIGKILL, err
        before = acknowledged_in_ledger(state_location)
        assert len(before) == 15
        assert accepted_ids(sandbox) == expected[:15]
        mark = len(sandbox.requests)

        second = child(state_location, sandbox.hook_url, 20, 5)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert out.split() == ["25", "0"]  # 25 sent, nothing was in flight
        resent = accepted_ids(sandbox, mark)
    assert before.isdisjoint(resent)
    assert Counter(accepted_ids(sandbox)) == Counter(expected)  # every record exactly once, same messageIds


def test_sigkill_at_a_random_moment_then_rerun(state_location: str) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    expected = [r.record_id for p in workload(30) for r in p.records]  # 60 records, one request each
    batch = 5
    with WebhookSandbox() as sandbox:
        first = child(state_location, sandbox.hook_url, 30, batch, rps=120)
        kill_at = rng.randint(2, 50)
        deadline = time.monotonic() + 30
        while len(sandbox.requests) < kill_at and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        before = acknowledged_in_ledger(state_location)
        mark = len(sandbox.requests)

        second = child(state_location, sandbox.hook_url, 30, batch)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 0, f"seed {seed}: {err}"
        resent = accepted_ids(sandbox, mark)
    everything = Counter(accepted_ids(sandbox))
    assert set(everything) == set(expected), f"seed {seed}"
    assert before.isdisjoint(resent), f"seed {seed}: an acknowledged record was sent again"
    duplicates = sum(n - 1 for n in everything.values())
    assert duplicates <= batch, f"seed {seed}: more than the batch in flight was sent twice"
