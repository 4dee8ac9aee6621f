"""Serialises messages into Segment JSON lines and releases them in timestamp order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from heapq import heappop, heappush
from random import Random

from activation_pipeline.synthetic.identity import uuid4_text

DAY_MS = 86_400_000
WEB, IOS, ANDROID, SERVER = 0, 1, 2, 3
"""Message sources: they differ in messageId style and in how late sentAt/receivedAt trail timestamp."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_PREFIX: dict[int, str] = {}


def day_text(day: int) -> str:
    """`YYYY-MM-DD` of a day number counted from the Unix epoch."""
    text = _DAY_PREFIX.get(day)
    if text is None:
        text = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
        _DAY_PREFIX[day] = text
    return text


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC text with milliseconds and `Z` for epoch milliseconds."""
    day, rem = divmod(ms, DAY_MS)
    hour, rem = divmod(rem, 3_600_000)
    minute, rem = divmod(rem, 60_000)
    second, milli = divmod(rem, 1000)
    return f"{day_text(day)}T{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}Z"


class Emitter:
    """Buffers built lines in a heap keyed by timestamp; drops anything at or after `end_ms`."""

    def __init__(self, rng: Random, end_ms: int) -> None:
        """Draw messageIds and delivery lags from rng; refuse timestamps >= end_ms."""
        self.rng = rng
        self.end_ms = end_ms
        self.heap: list[tuple[int, int, str]] = []
        self.seq = 0
        self.counts: dict[str, int] = {}

    @property
    def generated(self) -> int:
        """Number of valid messages built so far (released or still buffered)."""
        return self.seq

    def push(self, ts: float, typ: str, who: str, body: str, ctx: str, source: int) -> bool:
        """Build one line from pre-encoded JSON fragments; False (nothing built) if ts is past the end."""
        t = int(ts)
        if t >= self.end_ms:
            return False
        rng = self.rng
        r = rng.random()
        bits = rng.getrandbits(128)
        if source == WEB:
            sent = t + 20 + int(r * 1500)
            mid = f"ajs-next-{bits:032x}"
        elif source == IOS:
            sent = t + int(r * r * 30_000)
            mid = uuid4_text(bits).upper()
        elif source == ANDROID:
            sent = t + int(r * r * 30_000)
            mid = uuid4_text(bits)
        else:
            sent = t + int(r * 250)
            mid = uuid4_text(bits)
        received = sent + 25 + (bits >> 118)  # 10 spare random bits: 25..1048 ms in flight
        line = (
            f'{{"type":"{typ}","messageId":"{mid}","timestamp":"{iso_ms(t)}",{who},{body},'
            f'"context":{ctx},"sentAt":"{iso_ms(sent)}","receivedAt":"{iso_ms(received)}"}}'
        )
        heappush(self.heap, (t, self.seq, line))
        self.seq += 1
        counts = self.counts
        counts[typ] = counts.get(typ, 0) + 1
        return True

    def release(self, until: float) -> Iterator[tuple[int, str]]:
        """Pop buffered lines with timestamp <= until, oldest first."""
        heap = self.heap
        while heap and heap[0][0] <= until:
            t, _, line = heappop(heap)
            yield t, line

    def drain(self) -> Iterator[tuple[int, str]]:
        """Pop every buffered line, oldest first."""
        heap = self.heap
        while heap:
            t, _, line = heappop(heap)
            yield t, line
