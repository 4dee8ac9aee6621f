"""Classic webhook: each message POSTed as JSON (or the batch as a JSON array), signed with HMAC-SHA1.

With a shared secret, `X-Signature` is the hex HMAC-SHA1 of the exact body bytes sent (compact JSON), so a
receiver verifies the raw body. (Segment's actions webhook signs only the first element in batch mode; we
sign the whole body, which is what a receiver can check.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from activation_pipeline.config.secrets import SecretRef
from activation_pipeline.destinations.base import BatchContext, BatchResult, OutboundRecord, RecordResult
from activation_pipeline.destinations.http import ClientOptions, HttpResult
from activation_pipeline.destinations.outcomes import http_metrics, same_for_all
from activation_pipeline.destinations.webhook.settings import WebhookDestination


def compact_json(value: Any) -> bytes:
    """JSON as JavaScript's JSON.stringify writes it (no spaces), UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA1 of `body` with `secret`."""
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


class WebhookClient:
    """Sends Segment-spec messages to a URL, one per request or as a JSON array per batch."""

    def __init__(self, destination: WebhookDestination, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        settings = destination.settings
        where = f"destinations.{destination.id}.settings"
        headers = {
            name: value.resolve(f"{where}.headers.{name}") if isinstance(value, SecretRef) else value
            for name, value in settings.headers.items()
        }
        headers.setdefault("Content-Type", "application/json")
        self.secret = (
            settings.shared_secret.resolve(f"{where}.shared_secret") if settings.shared_secret else None
        )
        self.method = settings.method
        self.batch = settings.batch
        self.max_batch = settings.batch_size
        self.sender = options.sender(settings.url, headers=headers, timeout=settings.timeout_seconds)

    def _post(self, body: Any) -> HttpResult:
        data = compact_json(body)
        headers = {"X-Signature": signature(self.secret, data)} if self.secret else None
        return self.sender.request(self.method, "", data=data, headers=headers)

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """POST the batch (batch mode) or each record (single mode)."""
        del context
        if self.batch:
            messages = [dict(r.payload) for r in records]
            result = self._post(messages)
            return BatchResult(same_for_all(records, result), http_metrics([result]))
        results: list[RecordResult] = []
        answers: list[HttpResult] = []
        for record in records:
            result = self._post(dict(record.payload))
            answers.append(result)
            results += same_for_all([record], result)
        return BatchResult(results, http_metrics(answers))

    def close(self) -> None:
        """Close the HTTP session."""
        self.sender.close()
