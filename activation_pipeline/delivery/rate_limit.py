"""A rate limiter shared by every process and run writing to one destination, kept in the state store.

Design: a virtual schedule (GCRA). One row per bucket holds `next_slot`, the earliest time the next request
may go. A process reserves a few consecutive slots in one short transaction (`SELECT ... FOR UPDATE` on
PostgreSQL, `BEGIN IMMEDIATE` on SQLite), moving `next_slot` past them, then hands them to its threads,
each sleeping until its slot. Slots are spaced `1 / (rate * safety)` apart and a slot found more than
`tolerance` seconds in the past is dropped instead of being used late, so sends never bunch up: any
one-second window holds at most `rate * safety * (1 + jitter) + 1` sends, which stays under `rate` for the
few milliseconds of scheduling jitter a sender sees, while the achieved rate stays near `rate * safety`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

import sqlalchemy as sa

from activation_pipeline.state.schema import rate_limits
from activation_pipeline.state.store import StateStore

DEFAULT_SAFETY = 0.97


class SharedRateLimiter:
    """Token source for one destination whose budget is shared through the state store.

    A background thread keeps about `lookahead` seconds of slots reserved while `acquire` is being called,
    so waiting for the database (SQLite's busy handler sleeps in coarse steps) never holds senders up; it
    stops reserving half a second after the last `acquire`.
    """

    def __init__(
        self,
        store: StateStore,
        bucket: str,
        requests_per_second: float,
        *,
        safety: float = DEFAULT_SAFETY,
        block_seconds: float = 0.05,
        lookahead: float = 0.25,
        tolerance: float = 0.010,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if not 0 < safety <= 1:
            raise ValueError("safety must be in (0, 1]")
        self.store = store
        self.bucket = bucket
        self.rate = requests_per_second
        self.interval = 1.0 / (requests_per_second * safety)
        self.block = max(1, math.floor(block_seconds / self.interval))
        self.block_seconds = block_seconds
        self.lookahead = max(lookahead, self.interval)
        self.tolerance = tolerance
        self.clock = clock
        self.sleep = sleep
        self.dropped = 0
        self.reservations = 0
        self._slots: deque[float] = deque()
        self._cond = threading.Condition()
        self._refilling = False
        self._last_demand = 0.0
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._ensure_row()

    def _ensure_row(self) -> None:
        statement = (
            self.store.insert(rate_limits)
            .values(bucket=self.bucket, next_slot=0.0, updated_at=self.clock())
            .on_conflict_do_nothing(index_elements=["bucket"])
        )
        with self.store.write() as connection:
            connection.execute(statement)

    def _reserve(self) -> list[float]:
        """Reserve `block` consecutive slots in one transaction."""
        with self.store.write() as connection:
            next_slot = connection.execute(
                sa.select(rate_limits.c.next_slot)
                .where(rate_limits.c.bucket == self.bucket)
                .with_for_update()
            ).scalar_one()
            now = self.clock()
            start = max(now, next_slot)
            slots = [start + i * self.interval for i in range(self.block)]
            connection.execute(
                sa.update(rate_limits)
                .where(rate_limits.c.bucket == self.bucket)
                .values(next_slot=start + self.block * self.interval, updated_at=now)
            )
        return slots

    def _refill(self) -> None:
        """Keep `lookahead` seconds of slots reserved while there is demand."""
        while True:
            with self._cond:
                now = self.clock()
                if now - self._last_demand > 0.5:
                    self._refilling = False
                    return
                if self._slots and self._slots[-1] - now >= self.lookahead:
                    self._cond.wait(timeout=self.block_seconds / 2)
                    continue
            try:
                slots = self._reserve()
            except BaseException as error:  # surfaced to the next acquire
                with self._cond:
                    self._error = error
                    self._refilling = False
                    self._cond.notify_all()
                return
            with self._cond:
                self.reservations += 1
                self._slots.extend(slots)
                self._cond.notify_all()

    def _next_slot(self) -> float:
        with self._cond:
            self._last_demand = self.clock()
            while True:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                if not self._refilling:
                    self._refilling = True
                    self._thread = threading.Thread(
                        target=self._refill, name=f"rate-limit-{self.bucket}", daemon=True
                    )
                    self._thread.start()
                now = self.clock()
                while self._slots and self._slots[0] < now - self.tolerance:
                    self._slots.popleft()
                    self.dropped += 1
                if self._slots:
                    slot = self._slots.popleft()
                    self._cond.notify_all()
                    return slot
                self._cond.wait(timeout=0.05)

    def acquire(self) -> None:
        """Block until this process's next reserved slot; a slot overslept by more than `tolerance` (the
        thread was not scheduled in time) is given up for the next one, so sends never bunch up."""
        while True:
            slot = self._next_slot()
            delay = slot - self.clock()
            if delay > 0:
                self.sleep(delay)
            if self.clock() - slot <= self.tolerance:
                return
            with self._cond:
                self.dropped += 1

    def close(self) -> None:
        """Stop reserving slots (the background thread ends) and wait for it."""
        with self._cond:
            self._last_demand = 0.0
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=5)


def max_in_any_window(timestamps: list[float], window: float = 1.0) -> int:
    """The most timestamps inside any half-open window [t, t + window) (two pointers over sorted times)."""
    ordered = sorted(timestamps)
    best = 0
    start = 0
    for end, value in enumerate(ordered):
        while value - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
