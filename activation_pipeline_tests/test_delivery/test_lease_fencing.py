"""A run keeps its lease while a batch is slow, and a run that lost it anyway acknowledges nothing."""

import time
from collections.abc import Sequence

import pytest
import sqlalchemy as sa

from activation_pipeline.delivery.engine import deliver
from activation_pipeline.destinations.base import BatchContext, BatchResult, OutboundRecord
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.registry import build_client
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline.state.leases import DestinationBusyError, LeaseLostError, acquire_lease
from activation_pipeline.state.schema import delivery_ledger, destination_leases
from activation_pipeline.state.store import StateStore
from activation_pipeline_tests.test_delivery.workload import webhook_destination, workload

FAST = ClientOptions(sleep=lambda _s: None, retry=RetryPolicy(max_attempts=3))


class _Slow:
    """Wraps a client: its first batch takes `seconds`, while `during` runs (another run trying its luck)."""

    def __init__(self, inner: object, seconds: float, during: object) -> None:
        self.inner, self.seconds, self.during = inner, seconds, during
        self.max_batch = inner.max_batch  # type: ignore[attr-defined]
        self.calls = 0

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.seconds)
            self.during()  # type: ignore[operator]
        return self.inner.send(records, context)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]


def test_a_slow_batch_keeps_the_lease_alive(store: StateStore) -> None:
    """The lease lasts 1 s and the first batch 3 s: the heartbeat keeps it, so no second run takes over."""
    refused: list[Exception] = []

    def another_run() -> None:
        try:
            acquire_lease(store, "hook", ttl=1)
        except DestinationBusyError as error:
            refused.append(error)

    with WebhookSandbox() as sandbox:
        client = _Slow(build_client(webhook_destination(sandbox.hook_url), FAST), 3, another_run)
        report = deliver(store, client, destination_id="hook", planned=workload(3), lease_ttl=1)
        assert report.sent == 6 and len(refused) == 1
        assert len(sandbox.messages()) == 6


def test_a_run_that_lost_its_lease_acknowledges_nothing(store: StateStore) -> None:
    """Another run takes the lease over while the first is in a batch: the first's results are not recorded."""

    def take_over() -> None:
        with store.write() as connection:  # the first run looks dead: its lease expired long ago
            connection.execute(sa.update(destination_leases).values(expires_at=0.0))
        acquire_lease(store, "hook", ttl=600)

    with WebhookSandbox() as sandbox:
        client = _Slow(build_client(webhook_destination(sandbox.hook_url), FAST), 0, take_over)
        with pytest.raises(LeaseLostError, match="taken over"):
            deliver(store, client, destination_id="hook", planned=workload(3), batch_size=2)
    with store.read() as connection:
        acknowledged = connection.execute(sa.select(sa.func.count()).select_from(delivery_ledger)).scalar()
    assert acknowledged == 0
