"""Destination functions: user Python code receiving each message, like Segment's destination functions.

`handler` is either `package.module:function` (called for every message as `function(event, settings)`)
or a `.py` file (relative to the workspace) defining `on_identify`, `on_track`, `on_group` handlers with
the same arguments. A handler's return value is recorded in the ledger as the answer. Raising any exception
fails that record (reason: its type and message); raising `RetryableError` retries it with backoff, then
leaves it for the next run. A message type without a handler fails with `EventNotSupported`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from activation_pipeline.config.secrets import SecretRef
from activation_pipeline.destinations.base import (
    BatchContext,
    BatchResult,
    OutboundRecord,
    Outcome,
    RecordResult,
)
from activation_pipeline.destinations.function.settings import FunctionDestination
from activation_pipeline.destinations.http import ClientOptions
from activation_pipeline.errors import TerminalDestinationError, TransientDestinationError

Handler = Callable[[dict[str, Any], dict[str, str]], Any]
_IMPORT_LOCK = threading.Lock()
_RNG = random.Random()  # noqa: S311 - jitter, not cryptography
MAX_BATCH = 100


class RetryableError(TransientDestinationError):
    """Raised by a function to ask for the record to be retried later (a transient failure)."""


class EventNotSupportedError(TerminalDestinationError):
    """The function has no handler for this message type."""


def _load_file(path: Path) -> ModuleType:
    name = f"activation_function_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load destination function file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_handlers(handler: str, base_dir: Path | None = None) -> Callable[[str], Handler | None]:
    """A lookup from message type to handler, for `module:function` or a file of on_<type> handlers."""
    base = base_dir or Path.cwd()
    if handler.endswith(".py"):
        path = Path(handler)
        module = _load_file(path if path.is_absolute() else base / path)

        def from_file(message_type: str) -> Handler | None:
            """The file's on_<type> handler, if it defines one."""
            found = getattr(module, f"on_{message_type}", None)
            return found if callable(found) else None

        return from_file
    module_name, function_name = handler.split(":", 1)
    with _IMPORT_LOCK:
        added = str(base) not in sys.path
        if added:
            sys.path.insert(0, str(base))
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        finally:
            if added:
                sys.path.remove(str(base))
    if not callable(function):
        raise TypeError(f"{handler} is not callable")
    return lambda _message_type: function


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return repr(value)


class FunctionClient:
    """Calls a user function per message, rate-limited, retrying `RetryableError`."""

    max_batch = MAX_BATCH

    def __init__(self, destination: FunctionDestination, options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        settings = destination.settings
        where = f"destinations.{destination.id}.settings.settings"
        self.settings = {
            name: value.resolve(f"{where}.{name}") if isinstance(value, SecretRef) else value
            for name, value in settings.settings.items()
        }
        self.handlers = load_handlers(settings.handler, self.options.base_dir)
        self.retries = 0
        self.calls = 0

    def _call(self, handler: Handler, message: Mapping[str, Any]) -> RecordResult:
        policy = self.options.retry
        waited = 0.0
        record_id = str(message.get("messageId", ""))
        attempt = 0
        while True:
            attempt += 1
            if self.options.rate_limiter is not None:
                self.options.rate_limiter.acquire()
            self.calls += 1
            try:
                returned = handler(json.loads(json.dumps(message)), dict(self.settings))
            except TransientDestinationError as error:
                wait = policy.backoff(attempt, _RNG)
                if attempt >= policy.max_attempts or waited + wait > policy.max_total_wait:
                    return RecordResult(
                        record_id,
                        Outcome.RETRY,
                        f"{type(error).__name__}: {error}; gave up after {attempt} attempts",
                    )
                self.retries += 1
                waited += wait
                self.options.sleep(wait)
                continue
            except Exception as error:
                return RecordResult(record_id, Outcome.FAILED, f"{type(error).__name__}: {error}")
            return RecordResult(record_id, Outcome.ACKNOWLEDGED, "", None, {"returned": _jsonable(returned)})

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Call the handler of each message's type."""
        del context
        calls, retries = self.calls, self.retries
        started = time.monotonic()
        results = []
        for record in records:
            message_type = str(record.payload.get("type", ""))
            handler = self.handlers(message_type)
            if handler is None:
                reason = f"EventNotSupported: no on_{message_type} handler"
                results.append(RecordResult(record.record_id, Outcome.FAILED, reason))
                continue
            result = self._call(handler, record.payload)
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
        """Nothing to release."""
