"""The delivery engine shared by every destination: outbox in, rate-limited batches out, acknowledgements back.

`deliver` runs one sync of one destination:
1. take the destination's lease (one run per destination at a time; a dead holder's lease is taken over) and
   keep it with a heartbeat; every claim and acknowledgement is fenced by it, so a run that lost it (stalled
   past the lease while another took over) records nothing more;
2. recover: records left in flight by a killed run and records whose retries ran out go back to pending;
3. stage the planned changes (already-acknowledged records are skipped, failed ones re-queued, changes the
   snapshot already reflects dropped);
4. per connection, claim a batch (committed), send it (the client rate-limits and retries each request),
   record every result in the ledger, update the outbox and advance the snapshots of fully acknowledged
   changes (one transaction), and repeat until nothing is pending.
A crash anywhere re-sends at most the batches in flight, with the same messageIds; an acknowledged record
is never sent again.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from activation_pipeline.activation.model import PlannedChange
from activation_pipeline.destinations.base import (
    BatchContext,
    BatchResult,
    DestinationClient,
    Outcome,
    RecordResult,
)
from activation_pipeline.state import outbox as ob
from activation_pipeline.state.leases import Lease, LeaseKeeper, acquire_lease, hold_lease, release_lease
from activation_pipeline.state.schema import sync_runs
from activation_pipeline.state.snapshots import chunked
from activation_pipeline.state.store import StateStore

log = logging.getLogger(__name__)

AfterBatch = Callable[[int, BatchResult], None]
OnStaged = Callable[[int, int], None]
"""Told (records pending, batches they make) once staging is done."""
STAGE_CHUNK = 10_000


@dataclass(frozen=True)
class DeliveryReport:
    """Figures of one sync run of one destination (counts only: safe for logs and Dagster metadata)."""

    destination_id: str
    sync_id: str
    staged: int = 0
    requeued: int = 0
    skipped: int = 0
    recovered: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    retried: int = 0
    batches: int = 0
    requests: int = 0
    duration_seconds: float = 0.0
    extra: Mapping[str, float] = field(default_factory=dict)
    stopped: str = ""
    """Why the run stopped before sending everything: "deadline", "circuit_breaker", or "" (it did not)."""

    @property
    def requests_per_second(self) -> float:
        """Achieved HTTP requests per second over the run."""
        return self.requests / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def metadata(self) -> dict[str, float | int | str]:
        """Numeric run metadata for Dagster: sent, failed, retried, duration, achieved rps, ..."""
        return {
            "sync_id": self.sync_id,
            "staged": self.staged,
            "sent": self.sent,
            "failed": self.failed,
            "deferred_to_next_run": self.deferred,
            "retried": self.retried,
            "in_flight_resent": self.recovered,
            "stopped_early": self.stopped or "no",
            "batches": self.batches,
            "requests": self.requests,
            "duration_seconds": round(self.duration_seconds, 3),
            "requests_per_second": round(self.requests_per_second, 2),
            **{k: v for k, v in self.extra.items()},
        }


def staged_records(planned: Iterable[PlannedChange]) -> Iterator[ob.StagedRecord]:
    """Flatten planned changes into outbox items (lazily)."""
    return (
        ob.StagedRecord(
            record, p.connection_id, p.change_id, p.subject_key, p.snapshot_value, p.lookup_keys, p.resend
        )
        for p in planned
        for record in p.records
    )


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Run:
    store: StateStore
    client: DestinationClient
    destination_id: str
    sync_id: str
    batch_size: int
    connection_settings: Mapping[str, Mapping[str, Any]]
    after_batch: AfterBatch | None
    lease: Lease
    keeper: LeaseKeeper
    deadline: float | None = None
    """`time.monotonic()` after which no new batch is claimed (the rest waits for the next run)."""
    breaker_batches: int = 3
    seq: int = 0
    failed_streak: int = 0
    stopped: str = ""
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    metrics: dict[str, float] = field(default_factory=dict)
    operation_totals: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    """(connection, pending total) -> pending records per operation, counted once per pass."""

    def should_stop(self) -> bool:
        """True once the run's deadline passed or the breaker opened: pending records wait for the next run."""
        if not self.stopped and self.deadline is not None and time.monotonic() > self.deadline:
            self.stopped = "deadline"
        if not self.stopped and self.failed_streak >= self.breaker_batches:
            self.stopped = "circuit_breaker"
            log.warning(
                "destination %s: %d batches in a row had nothing acknowledged; the rest waits for the next run",
                self.destination_id,
                self.failed_streak,
            )
        return bool(self.stopped)

    def claim(
        self, connection_id: str, batch_count: int, total: int
    ) -> tuple[str, list[ob.ClaimedRecord], BatchContext]:
        """Claim the next batch of a connection (committed before anything is sent)."""
        self.seq += 1
        self.keeper.check()
        with self.store.write() as connection:
            hold_lease(connection, self.lease)
            totals = self.operation_totals.get((connection_id, total))
            if totals is None:
                totals = ob.pending_operations(connection, self.destination_id, connection_id)
                self.operation_totals[(connection_id, total)] = totals
            batch_id, claimed = ob.claim_batch(
                connection,
                self.destination_id,
                connection_id,
                self.sync_id,
                self.seq,
                self.batch_size,
                _now(),
            )
        context = BatchContext(
            connection_id=connection_id,
            sync_id=self.sync_id,
            batch_seq=self.seq,
            batch_count=batch_count,
            estimated_total=total,
            connection_settings=self.connection_settings.get(connection_id, {}),
            operation_totals=totals,
        )
        return batch_id, claimed, context

    def send(self, claimed: list[ob.ClaimedRecord], context: BatchContext) -> BatchResult:
        """Send a claimed batch; a client exception defers the whole batch to the next run."""
        try:
            return self.client.send([c.record for c in claimed], context)
        except Exception as error:  # a client bug must not lose the batch: it goes again next run
            frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
            where = f"{frame.filename}:{frame.lineno}" if frame else "?"
            # The exception's message may quote payload values: log its type and place only.
            log.error(
                "destination %s: client raised %s at %s", self.destination_id, type(error).__name__, where
            )
            reason = f"client error: {type(error).__name__} at {where}"
            return BatchResult([RecordResult(c.record.record_id, Outcome.RETRY, reason) for c in claimed])

    def complete(self, batch_id: str, claimed: list[ob.ClaimedRecord], result: BatchResult, seq: int) -> None:
        """Record a batch's results in one transaction, then call the after-batch hook."""
        with self.store.write() as connection:
            hold_lease(connection, self.lease)  # a run that lost its lease acknowledges nothing
            counts = ob.complete_batch(
                self.store,
                connection,
                self.destination_id,
                self.sync_id,
                batch_id,
                claimed,
                result.results,
                result.metrics,
                _now(),
            )
        for outcome, n in counts.items():
            self.counts[outcome] += n
        self.failed_streak = 0 if counts[Outcome.ACKNOWLEDGED] or not claimed else self.failed_streak + 1
        for key, value in result.metrics.items():
            self.metrics[key] = self.metrics.get(key, 0.0) + float(value)
        log.info(
            "destination %s batch %d: %d acknowledged, %d failed, %d deferred",
            self.destination_id,
            seq,
            counts[Outcome.ACKNOWLEDGED],
            counts[Outcome.FAILED],
            counts[Outcome.RETRY],
        )
        if self.after_batch is not None:
            self.after_batch(seq, result)


def deliver(
    store: StateStore,
    client: DestinationClient,
    *,
    destination_id: str,
    planned: Iterable[PlannedChange] = (),
    sync_id: str | None = None,
    batch_size: int | None = None,
    concurrency: int = 1,
    connection_settings: Mapping[str, Mapping[str, Any]] | None = None,
    after_batch: AfterBatch | None = None,
    lease_ttl: float = 600.0,
    resend: bool = False,
    on_staged: OnStaged | None = None,
    max_run_seconds: float | None = 3600.0,
    breaker_batches: int = 3,
    records_per_request: int | None = None,
) -> DeliveryReport:
    """Stage `planned` and deliver everything pending for `destination_id`; returns the run's figures.

    `planned` may be a stream: it is staged `STAGE_CHUNK` records at a time, each chunk in its own
    transaction. `resend` stages changes even when the snapshot already holds them (resyncs). `on_staged`
    is told how many records and batches are pending once staging is done (what the sync will send).
    A run claims no new batch after `max_run_seconds`, nor after `breaker_batches` batches in a row with nothing
    acknowledged (a dead or refusing destination): what is left stays pending for the next run, counted as
    deferred, and the report says why it stopped. With `concurrency` > 1 and one request per record
    (`records_per_request` 1), each batch is shared out among the senders."""
    started = time.monotonic()
    sync_id = sync_id or f"sync_{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:8]}"
    size = max(1, min(batch_size or client.max_batch, client.max_batch))
    lease = acquire_lease(store, destination_id, lease_ttl)
    keeper = LeaseKeeper(store, lease, lease_ttl)
    try:
        with store.write() as connection:
            hold_lease(connection, lease)
            connection.execute(
                sa.insert(sync_runs).values(
                    sync_id=sync_id, destination_id=destination_id, status="running", started_at=_now()
                )
            )
            recovered = ob.recover(connection, destination_id, _now())
        counts = ob.StageCounts()
        for part in chunked(staged_records(planned), STAGE_CHUNK):
            with store.write() as connection:
                hold_lease(connection, lease)
                counts += ob.stage(store, connection, destination_id, sync_id, part, _now(), resend=resend)
        run = _Run(
            store,
            client,
            destination_id,
            sync_id,
            size,
            connection_settings or {},
            after_batch,
            lease,
            keeper,
            None if max_run_seconds is None else started + max_run_seconds,
            breaker_batches,
        )
        if on_staged is not None:
            pending = _pending(run)
            on_staged(sum(n for _, n in pending), sum(math.ceil(n / size) for _, n in pending))
        if concurrency <= 1:
            _send_serial(run)
        else:
            _send_parallel(run, concurrency, split=records_per_request == 1)
        duration = time.monotonic() - started
        report = DeliveryReport(
            destination_id=destination_id,
            sync_id=sync_id,
            staged=counts.staged,
            requeued=counts.requeued,
            skipped=counts.already_acknowledged + counts.already_in_snapshot,
            recovered=recovered,
            sent=run.counts[Outcome.ACKNOWLEDGED],
            failed=run.counts[Outcome.FAILED] + counts.refused,
            deferred=run.counts[Outcome.RETRY] + (sum(n for _, n in _pending(run)) if run.stopped else 0),
            retried=int(run.metrics.get("http_retries", 0)),
            batches=run.seq,
            requests=int(run.metrics.get("http_requests", 0)),
            duration_seconds=duration,
            extra={k: v for k, v in run.metrics.items() if k not in ("http_retries", "http_requests")},
            stopped=run.stopped,
        )
        with store.write() as connection:
            connection.execute(
                sa.update(sync_runs)
                .where(sync_runs.c.sync_id == sync_id)
                .values(status="done", finished_at=_now(), metrics=report.metadata())
            )
        log.info(
            "destination %s sync %s: %d sent, %d failed, %d deferred in %.1f s",
            destination_id,
            sync_id,
            report.sent,
            report.failed,
            report.deferred,
            duration,
        )
        return report
    finally:
        keeper.stop()
        release_lease(store, lease)


def _pending(run: _Run) -> list[tuple[str, int]]:
    with run.store.read() as connection:
        return ob.pending_by_connection(connection, run.destination_id)


def _send_serial(run: _Run) -> None:
    while not run.should_stop() and (pending := _pending(run)):
        for connection_id, total in pending:
            batch_count = math.ceil(total / run.batch_size)
            for _ in range(batch_count):
                if run.should_stop():
                    return
                batch_id, claimed, context = run.claim(connection_id, batch_count, total)
                if not claimed:
                    break
                result = run.send(claimed, context)
                run.complete(batch_id, claimed, result, context.batch_seq)


@dataclass
class _InFlight:
    """A claimed batch whose slices are being sent; completed once every slice has answered."""

    batch_id: str
    claimed: list[ob.ClaimedRecord]
    context: BatchContext
    waiting: int
    results: list[RecordResult] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, result: BatchResult) -> bool:
        """Take one slice's answer; True once the whole batch has answered."""
        self.results.extend(result.results)
        for key, value in result.metrics.items():
            self.metrics[key] = self.metrics.get(key, 0.0) + float(value)
        self.waiting -= 1
        return self.waiting == 0


def _slices(claimed: list[ob.ClaimedRecord], concurrency: int, split: bool) -> list[list[ob.ClaimedRecord]]:
    if not split:
        return [claimed]
    size = max(1, math.ceil(len(claimed) / concurrency))
    return [claimed[i : i + size] for i in range(0, len(claimed), size)]


def _send_parallel(run: _Run, concurrency: int, split: bool) -> None:
    """Keep every sender busy; claim and complete batches on this thread (the store's writer).

    With `split` (one request per record) a batch is cut into one slice per sender and the next batch is
    claimed while the current one is still sending, so senders never wait for the ledger writes of a
    finished batch, and the last batch of a run is sent by every sender, not by one."""
    queue_target = 2 * concurrency
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deliver") as pool:
        while not run.should_stop() and (pending := _pending(run)):
            for connection_id, total in pending:
                batch_count = math.ceil(total / run.batch_size)
                remaining = batch_count
                slices_in_flight: dict[Future[BatchResult], _InFlight] = {}
                while remaining > 0 or slices_in_flight:
                    while remaining > 0 and len(slices_in_flight) < queue_target and not run.should_stop():
                        batch_id, claimed, context = run.claim(connection_id, batch_count, total)
                        remaining -= 1
                        if not claimed:
                            remaining = 0
                            break
                        parts = _slices(claimed, concurrency, split)
                        batch = _InFlight(batch_id, claimed, context, len(parts))
                        for part in parts:
                            slices_in_flight[pool.submit(run.send, part, context)] = batch
                    if not slices_in_flight:
                        break
                    done, _ = wait(slices_in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        batch = slices_in_flight.pop(future)
                        if batch.add(future.result()):
                            result = BatchResult(batch.results, batch.metrics)
                            run.complete(batch.batch_id, batch.claimed, result, batch.context.batch_seq)
