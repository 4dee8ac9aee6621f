"""A fake webhook receiver: JSON messages (or arrays of them) at one path, HMAC-SHA1 `X-Signature` checked."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from activation_pipeline.sandbox.base import (
    RecordedRequest,
    Reply,
    SandboxServer,
    json_error,
    parse_json_body,
)

MESSAGE_TYPES = frozenset({"identify", "track", "group", "page", "screen", "alias"})


def message_problem(message: Any) -> str | None:
    """Why a value is not a Segment-spec message, or None."""
    if not isinstance(message, Mapping):
        return "a message must be a JSON object"
    if message.get("type") not in MESSAGE_TYPES:
        return "type must be one of identify, track, group, page, screen, alias"
    for key in ("messageId", "timestamp"):
        if not isinstance(message.get(key), str) or not message[key]:
            return f"{key} is required"
    if not message.get("userId") and not message.get("anonymousId"):
        return "userId or anonymousId is required"
    if message["type"] == "track" and not message.get("event"):
        return "track needs an event name"
    if message["type"] == "group" and not message.get("groupId"):
        return "group needs a groupId"
    return None


class WebhookSandbox(SandboxServer):
    """Accepts POSTs of Segment messages at `path`; verifies the signature when a secret is set."""

    name = "webhook"

    def __init__(
        self,
        *,
        shared_secret: str | None = None,
        path: str = "/hook",
        method: str = "POST",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.shared_secret = shared_secret
        self.path = path
        self.method = method

    @property
    def hook_url(self) -> str:
        """The URL to configure as the webhook's `url`."""
        return self.url + self.path

    def handle(self, request: RecordedRequest) -> Reply:
        """Validate path, method, content type, signature and every message."""
        if request.path != self.path:
            return json_error(404, "no webhook at this path")
        if request.method != self.method:
            return json_error(405, f"use {self.method}")
        body, error = parse_json_body(request)
        if error is not None:
            return error
        if self.shared_secret is not None:
            expected = hmac.new(self.shared_secret.encode(), request.body, hashlib.sha1).hexdigest()
            if not hmac.compare_digest(expected, request.header("x-signature") or ""):
                return json_error(401, "invalid X-Signature")
        messages = body if isinstance(body, list) else [body]
        if not messages:
            return json_error(400, "empty batch")
        for index, message in enumerate(messages):
            problem = message_problem(message) or self.item_error(message)
            if problem:
                return json_error(400, problem, index=index)
        return Reply(200, {"ok": True, "received": len(messages)})

    def messages(self) -> list[dict[str, Any]]:
        """Every message of every request answered 2xx, in arrival order."""
        found: list[dict[str, Any]] = []
        for request in self.successful(self.path):
            body = request.json()
            found += body if isinstance(body, list) else [body]
        return found
