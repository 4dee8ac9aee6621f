"""Who may call the Profile API and how often: HTTP Basic with an access token, a token bucket per token."""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from activation_pipeline.config.serving import AccessToken


class NoAccessTokenError(RuntimeError):
    """The service has no access token to accept, so it does not start."""


@dataclass(frozen=True)
class Credential:
    """An accepted token's name (for logs) and value."""

    name: str
    value: bytes


def resolve_tokens(tokens: Sequence[AccessToken]) -> list[Credential]:
    """Every configured token's value from its environment variable; a missing one stops the service."""
    missing = [t.token.env for t in tokens if not os.environ.get(t.token.env)]
    if missing:
        raise NoAccessTokenError(
            "the Profile API needs its access token: set the environment variable(s) " + ", ".join(missing)
        )
    return [Credential(t.name, t.token.resolve(f"serving.tokens[{t.name}]").encode()) for t in tokens]


def token_of(authorization: str | None, credentials: Sequence[Credential]) -> Credential | None:
    """The credential a `Basic base64(token:)` header carries (the password is ignored, as Segment does)."""
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    username = decoded.split(b":", 1)[0]
    found = None
    for credential in credentials:
        # Compare with every token in constant time, so timing tells nothing about which nearly matched.
        if hmac.compare_digest(username, credential.value):
            found = credential
    return found


class RateLimiter:
    """A token bucket per access token: `rate` requests a second, bursts of up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, name: str) -> float:
        """0 when a request of `name` may go now, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(name, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                return 0.0
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / self.rate
