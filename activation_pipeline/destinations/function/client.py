"""Destination functions: user Python code receiving each message, like Segment's destination functions.

`handler` is either `package.module:function` (called for every message as `function(event, settings)`)
or a `.py` file (relative to the workspace) defining `on_identify`, `on_track`, `on_group` handlers with
the same arguments. The function runs in a process of its own (`worker`) that sees only its own settings, not
this process's environment or any other destination's secret, with a memory limit, a timeout per message and a
cap on what it may return. A handler's return value is recorded in the ledger as the answer. Raising any
exception fails that record (reason: its type and message); raising `RetryableError` retries it with backoff,
then leaves it for the next run; a timeout leaves it for the next run. A message type without a handler fails
with `EventNotSupported`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from activation_pipeline.config.secrets import SecretRef
from activation_pipeline.destinations.base import (
    BatchContext,
    BatchResult,
    OutboundRecord,
    Outcome,
    RecordResult,
)
from activation_pipeline.destinations.function.handlers import EventNotSupportedError, RetryableError
from activation_pipeline.destinations.function.process import FunctionProcess, FunctionProcessError
from activation_pipeline.destinations.function.settings import FunctionDestination
from activation_pipeline.destinations.http import ClientOptions

__all__ = ["MAX_BATCH", "EventNotSupportedError", "FunctionClient", "RetryableError"]

_RNG = random.Random()  # noqa: S311 - jitter, not cryptography
MAX_BATCH = 100
TIMEOUTS_BEFORE_DEFERRING = 3
"""Consecutive timeouts after which the rest of a batch waits for the next run instead of timing out too."""


class FunctionClient:
    """Calls a user function per message, rate-limited, retrying `RetryableError`."""

    max_batch = MAX_BATCH

    def __init__(self, destination: FunctionDestination, options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        settings = destination.settings
        where = f"destinations.{destination.id}.settings.settings"
        resolved = {
            name: value.resolve(f"{where}.{name}") if isinstance(value, SecretRef) else value
            for name, value in settings.settings.items()
        }
        self.process = FunctionProcess(
            settings.handler,
            self.options.base_dir or Path.cwd(),
            resolved,
            timeout=settings.timeout_seconds,
            memory_mb=settings.memory_mb,
            max_answer_bytes=settings.max_answer_bytes,
        )
        self.retries = 0
        self.calls = 0

    def _call(self, message: dict[str, Any]) -> RecordResult:
        policy = self.options.retry
        waited = 0.0
        record_id = str(message.get("messageId", ""))
        message_type = str(message.get("type", ""))
        attempt = 0
        while True:
            attempt += 1
            if self.options.rate_limiter is not None:
                self.options.rate_limiter.acquire()
            self.calls += 1
            try:
                answer = self.process.call(message_type, json.loads(json.dumps(message)))
            except FunctionProcessError as error:
                outcome = Outcome.RETRY if error.transient else Outcome.FAILED
                return RecordResult(record_id, outcome, str(error))
            status, reason = answer.get("status"), str(answer.get("reason", ""))
            if status == "ok":
                return RecordResult(
                    record_id, Outcome.ACKNOWLEDGED, "", None, {"returned": answer.get("returned")}
                )
            if status != "retry":
                return RecordResult(record_id, Outcome.FAILED, reason)
            wait = policy.backoff(attempt, _RNG)
            if attempt >= policy.max_attempts or waited + wait > policy.max_total_wait:
                return RecordResult(record_id, Outcome.RETRY, f"{reason}; gave up after {attempt} attempts")
            self.retries += 1
            waited += wait
            self.options.sleep(wait)

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Call the function for each message, in its own process."""
        del context
        calls, retries = self.calls, self.retries
        started = time.monotonic()
        results: list[RecordResult] = []
        timeouts = 0
        for record in records:
            if timeouts >= TIMEOUTS_BEFORE_DEFERRING:
                reason = f"deferred: the function timed out {timeouts} times in a row"
                results.append(RecordResult(record.record_id, Outcome.RETRY, reason))
                continue
            result = self._call(dict(record.payload))
            timeouts = timeouts + 1 if result.reason.startswith("timed out") else 0
            results.append(
                RecordResult(record.record_id, result.outcome, result.reason, result.sent, result.response)
            )
        metrics = {
            "http_requests": float(self.calls - calls),
            "http_retries": float(self.retries - retries),
            "function_seconds": round(time.monotonic() - started, 3),
        }
        return BatchResult(results, metrics)

    def close(self) -> None:
        """Stop the function's process."""
        self.process.stop()
