"""Who may call the Profile API and how often: HTTP Basic with an access token, a token bucket per token."""

from __future__ import annotations

import base64
import binascii
import fcntl
import hmac
import mmap
import os
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
    """A token bucket per access token: `rate` requests a second, bursts of up to one second's worth.

    The buckets live in a small file mapped into memory and locked per token, so that every worker process of
    one service shares them; `time.monotonic()` is one clock for all processes of a machine."""

    SLOT = struct.Struct("dd")
    """tokens left, and when they were counted (0: never, so the bucket is full)."""

    def __init__(self, rate: float, names: Sequence[str], path: Path) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._offsets = {name: i * self.SLOT.size for i, name in enumerate(names)}
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        size = self.SLOT.size * max(1, len(names))
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)
        self._lock = threading.Lock()  # fcntl locks are per process: threads of one process take this first

    def allow(self, name: str) -> float:
        """0 when a request of `name` may go now, else the seconds until it may."""
        offset = self._offsets[name]
        with self._lock:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, self.SLOT.size, offset)
            try:
                now = time.monotonic()
                tokens, stamp = self.SLOT.unpack_from(self._map, offset)
                tokens = (
                    self.capacity if stamp == 0 else min(self.capacity, tokens + (now - stamp) * self.rate)
                )
                allowed = tokens >= 1.0
                self.SLOT.pack_into(self._map, offset, tokens - 1.0 if allowed else tokens, now)
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, self.SLOT.size, offset)
        return 0.0 if allowed else (1.0 - tokens) / self.rate

    def close(self) -> None:
        """Unmap and close the file."""
        self._map.close()
        os.close(self._fd)
