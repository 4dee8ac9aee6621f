"""The delivery engine on SQLite and PostgreSQL against sandboxes over real HTTP: acknowledgement, permanent
and transient failures, snapshots, resends, the ledger, and concurrent runs."""

import threading
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from activation_pipeline.activation.model import Change, ChangeKind
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.delivery.engine import deliver
from activation_pipeline.destinations.braze.server import BrazeSandbox
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.registry import build_client
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline.state.leases import DestinationBusyError, acquire_lease, release_lease
from activation_pipeline.state.ledger import format_ledger, query_ledger, show_ledger
from activation_pipeline.state.schema import delivery_ledger, outbox
from activation_pipeline.state.snapshots import read_snapshot
from activation_pipeline.state.store import StateStore
from activation_pipeline_tests.test_delivery.workload import (
    AS_OF,
    braze_destination,
    connection,
    profile,
    webhook_destination,
    workload,
)

FAST = ClientOptions(sleep=lambda _s: None, retry=RetryPolicy(max_attempts=3))


def delivered_ids(sandbox: WebhookSandbox) -> list[str]:
    return [m["messageId"] for m in sandbox.messages()]


def test_deliver_acknowledges_and_advances_snapshot(store: StateStore) -> None:
    planned = workload(5)
    with WebhookSandbox() as sandbox:
        client = build_client(webhook_destination(sandbox.hook_url, batch=True), FAST)
        report = deliver(store, client, destination_id="hook", planned=planned, batch_size=4)
    assert (report.staged, report.sent, report.failed, report.batches) == (10, 10, 0, 3)
    assert sorted(delivered_ids(sandbox)) == sorted(r.record_id for p in planned for r in p.records)
    assert read_snapshot(store, planned[0].connection_id) == {f"p{i:05d}": True for i in range(5)}
    meta = report.metadata()
    assert meta["sent"] == 10 and meta["requests"] == 3 and meta["requests_per_second"] > 0


def test_permanent_failure_recorded_not_retried_and_sent_again_next_run(store: StateStore) -> None:
    planned = workload(3)
    with WebhookSandbox() as sandbox:
        sandbox.reject_items(lambda m: m["userId"] == "u00001", "user refused")
        client = build_client(webhook_destination(sandbox.hook_url), FAST)
        first = deliver(store, client, destination_id="hook", planned=planned)
        assert (first.sent, first.failed, first.retried) == (4, 2, 0)
        refused = [r for r in sandbox.requests if r.status == 400]
        assert len(refused) == 2  # identify + track of u00001, each sent once
        assert "p00001" not in read_snapshot(store, planned[0].connection_id)
        rows = query_ledger(store, "user1@example.com", "hook")
        assert {r.outcome for r in rows} == {"failed"} and all(
            "user refused" in (r.reason or "") for r in rows
        )

        # The snapshot did not advance, so the next run's delta holds the change again: only it is re-sent.
        sandbox.reset()
        second = deliver(store, client, destination_id="hook", planned=planned)
        assert (second.staged, second.requeued, second.sent) == (0, 2, 2)
        assert {m["userId"] for m in sandbox.messages()} == {"u00001"}
    assert read_snapshot(store, planned[0].connection_id)["p00001"] is True


def test_429_and_500_retried_within_the_run(store: StateStore) -> None:
    planned = workload(2)
    with WebhookSandbox() as sandbox:
        sandbox.throttle_next(2, retry_after=1)
        sandbox.fail_once(500)
        waits: list[float] = []
        client = build_client(
            webhook_destination(sandbox.hook_url, batch=True), ClientOptions(sleep=waits.append)
        )
        report = deliver(store, client, destination_id="hook", planned=planned)
    assert (report.sent, report.failed, report.retried) == (4, 0, 3)
    assert [r.status for r in sandbox.requests] == [429, 429, 500, 200]
    assert waits[0] >= 1 and waits[1] >= 1


def test_transient_failure_exhausted_goes_again_next_run(store: StateStore) -> None:
    planned = workload(2)
    with WebhookSandbox() as sandbox:
        sandbox.fail_next(3, 503)
        client = build_client(webhook_destination(sandbox.hook_url, batch=True), FAST)
        first = deliver(store, client, destination_id="hook", planned=planned)
        assert (first.sent, first.deferred) == (0, 4)
        assert read_snapshot(store, planned[0].connection_id) == {}
        second = deliver(store, client, destination_id="hook")  # nothing new planned: the outbox drains
    assert (second.sent, second.recovered) == (4, 0)
    ids = delivered_ids(sandbox)
    assert sorted(ids) == sorted(r.record_id for p in planned for r in p.records)


def test_acknowledged_records_are_never_sent_again(store: StateStore) -> None:
    planned = workload(3)
    with WebhookSandbox() as sandbox:
        client = build_client(webhook_destination(sandbox.hook_url, batch=True), FAST)
        deliver(store, client, destination_id="hook", planned=planned)
        again = deliver(store, client, destination_id="hook", planned=planned)
        with store.write() as db:  # even if the snapshot were lost, the outbox remembers
            db.execute(sa.text("DELETE FROM ap_sync_snapshots"))
        third = deliver(store, client, destination_id="hook", planned=planned)
    assert (again.staged, again.sent, again.skipped) == (0, 0, 6)
    assert (third.staged, third.sent) == (0, 0)
    assert Counter(delivered_ids(sandbox)).most_common(1)[0][1] == 1


def test_ledger_by_any_identifier(store: StateStore, state_location: str) -> None:
    p = profile(
        "p42", user_id="u42", emails=("ann@example.com", "ann.work@example.com"), phones=("+33612345678",)
    )
    conn = connection(send_track=True)
    planned = plan_changes([Change(ChangeKind.ENTERED, p, AS_OF)], conn, kind="event", space="acme")
    with BrazeSandbox() as sandbox:
        client = build_client(braze_destination(sandbox.url), FAST)
        deliver(store, client, destination_id="braze", planned=planned)
    for key in ("ANN.WORK@example.com", "+33612345678", "u42", "p42"):
        rows = show_ledger(state_location, "braze", key)
        assert len(rows) == 2, key  # one identify and one track, each carrying every identifier
    rows = query_ledger(store, "ann@example.com", "braze")
    assert {r.outcome for r in rows} == {"acknowledged"}
    assert rows[0].response["status"] == 201 and rows[0].batch_id
    assert "attributes" in rows[0].sent or "events" in rows[0].sent
    text = format_ledger(rows)
    assert "acknowledged" in text and "braze" in text
    assert query_ledger(store, "nobody@example.com", "braze") == []
    with store.read() as db:
        stored_keys = db.execute(sa.text("SELECT key_hash FROM ap_ledger_keys")).scalars().all()
    assert "ann@example.com" not in stored_keys and all(len(k) == 64 for k in stored_keys)


def test_change_already_in_snapshot_is_not_staged(store: StateStore) -> None:
    """A rerun that recomputes the delta at another as-of time sends nothing already delivered."""
    with WebhookSandbox() as sandbox:
        client = build_client(webhook_destination(sandbox.hook_url, batch=True), FAST)
        deliver(store, client, destination_id="hook", planned=workload(2))
        later = workload(2, as_of=AS_OF.replace(hour=5))
        report = deliver(store, client, destination_id="hook", planned=later)
    assert (report.staged, report.sent) == (0, 0)


def test_one_run_per_destination(store: StateStore) -> None:
    lease = acquire_lease(store, "hook")
    try:
        with WebhookSandbox() as sandbox:
            client = build_client(webhook_destination(sandbox.hook_url), FAST)
            with pytest.raises(DestinationBusyError, match="being synced"):
                deliver(store, client, destination_id="hook", planned=workload(1))
    finally:
        release_lease(store, lease)


def test_concurrent_runs_for_different_destinations(store: StateStore, state_location: str) -> None:
    """Two runs at once on one store (each with its own engine, like two processes) corrupt nothing."""
    from activation_pipeline.state.store import open_state

    errors: list[BaseException] = []
    reports: dict[str, Any] = {}
    with WebhookSandbox() as hook_a, WebhookSandbox() as hook_b:

        def run(name: str, sandbox: WebhookSandbox) -> None:
            own = open_state(state_location)
            try:
                client = build_client(webhook_destination(sandbox.hook_url), FAST)
                reports[name] = deliver(
                    own, client, destination_id=name, planned=workload(30, destination=name), batch_size=7
                )
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)
            finally:
                own.dispose()

        threads = [
            threading.Thread(target=run, args=(n, s)) for n, s in (("dest_a", hook_a), ("dest_b", hook_b))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert reports["dest_a"].sent == reports["dest_b"].sent == 60
    with store.read() as db:
        for name in ("dest_a", "dest_b"):
            statuses = db.execute(
                sa.select(outbox.c.status, sa.func.count())
                .where(outbox.c.destination_id == name)
                .group_by(outbox.c.status)
            ).all()
            assert [tuple(row) for row in statuses] == [("acknowledged", 60)]
            count = db.execute(
                sa.select(sa.func.count())
                .select_from(delivery_ledger)
                .where(delivery_ledger.c.destination_id == name)
            ).scalar_one()
            assert count == 60
    assert len(set(delivered_ids(hook_a))) == 60 and len(set(delivered_ids(hook_b))) == 60


def test_parallel_sending_keeps_every_record_once(store: StateStore) -> None:
    with WebhookSandbox() as sandbox:
        client = build_client(webhook_destination(sandbox.hook_url), FAST)
        report = deliver(
            store, client, destination_id="hook", planned=workload(40), batch_size=5, concurrency=4
        )
    assert report.sent == 80 and report.batches == 16
    assert sorted(delivered_ids(sandbox)) == sorted(r.record_id for p in workload(40) for r in p.records)


class _Recording:
    """A real client whose calls are noted (which records, on which thread), to see how batches are shared."""

    def __init__(self, client: Any) -> None:
        self.client, self.max_batch = client, client.max_batch
        self.calls: list[tuple[int, int, str]] = []
        self.lock = threading.Lock()

    def send(self, records: Any, context: Any) -> Any:
        with self.lock:
            self.calls.append((context.batch_seq, len(records), threading.current_thread().name))
        return self.client.send(records, context)

    def close(self) -> None:
        self.client.close()


def test_one_request_per_record_batches_are_shared_among_senders(store: StateStore) -> None:
    """Each batch goes out in one slice per sender, and is still claimed, recorded and reported as one."""
    with WebhookSandbox() as sandbox:
        client = _Recording(build_client(webhook_destination(sandbox.hook_url), FAST))
        finished: list[tuple[int, int]] = []
        report = deliver(
            store,
            client,
            destination_id="hook",
            planned=workload(40),
            batch_size=40,
            concurrency=4,
            records_per_request=1,
            after_batch=lambda seq, result: finished.append((seq, len(result.results))),
        )
    assert report.sent == 80 and report.batches == 2 and report.requests == 80
    assert sorted(finished) == [(1, 40), (2, 40)]
    assert sorted((seq, size) for seq, size, _ in client.calls) == [(1, 10)] * 4 + [(2, 10)] * 4
    assert len({thread for _, _, thread in client.calls}) > 1
    assert sorted(delivered_ids(sandbox)) == sorted(r.record_id for p in workload(40) for r in p.records)
    with store.read() as connection:
        rows = connection.execute(sa.select(delivery_ledger.c.record_id)).scalars().all()
    assert sorted(rows) == sorted(r.record_id for p in workload(40) for r in p.records)


def test_tables_are_created_idempotently(state_location: str) -> None:
    from activation_pipeline.state.store import open_state

    for _ in range(2):
        open_state(state_location).dispose()
