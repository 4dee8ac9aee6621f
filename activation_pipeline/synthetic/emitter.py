"""Serialises messages into Segment JSON lines and releases them in timestamp order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from heapq import heappush
from random import Random

from activation_pipeline.synthetic.identity import uuid4_text

DAY_MS = 86_400_000
WEB, IOS, ANDROID, SERVER = 0, 1, 2, 3
"""Message sources: they differ in messageId style and in how late sentAt/receivedAt trail timestamp."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_PREFIX: dict[int, str] = {}
# Lookup tables make timestamp rendering three lookups: day "YYYY-MM-DDT", minute "HH:MM:", rest "SS.mmmZ".
_MINUTE_TEXT = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_SECOND_MS_TEXT = tuple(f"{r // 1000:02d}.{r % 1000:03d}Z" for r in range(60_000))


def day_text(day: int) -> str:
    """`YYYY-MM-DD` of a day number counted from the Unix epoch."""
    return _day_prefix(day)[:-1]


def _day_prefix(day: int) -> str:
    text = _DAY_PREFIX.get(day)
    if text is None:
        text = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
        _DAY_PREFIX[day] = text
    return text


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC text with milliseconds and `Z` for epoch milliseconds."""
    day, rem = divmod(ms, DAY_MS)
    minute, rest = divmod(rem, 60_000)
    prefix = _DAY_PREFIX.get(day) or _day_prefix(day)
    return prefix + _MINUTE_TEXT[minute] + _SECOND_MS_TEXT[rest]


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
        bits = self.rng.getrandbits(128)
        r = (bits & 0xFFFF) / 65_536.0  # low bits double as the delivery-lag draw
        if source == WEB:
            sent = t + 20 + int(r * 1500)
            mid = "ajs-next-" + bits.to_bytes(16, "big").hex()
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
        day, rem = divmod(t, DAY_MS)
        rem_received = rem + received - t
        if rem_received < DAY_MS:  # the usual case: all three timestamps on the same day
            prefix = _DAY_PREFIX.get(day) or _day_prefix(day)
            mt = _MINUTE_TEXT
            st = _SECOND_MS_TEXT
            m1, s1 = divmod(rem, 60_000)
            m2, s2 = divmod(rem + sent - t, 60_000)
            m3, s3 = divmod(rem_received, 60_000)
            line = (
                f'{{"type":"{typ}","messageId":"{mid}","timestamp":"{prefix}{mt[m1]}{st[s1]}",{who},{body},'
                f'"context":{ctx},"sentAt":"{prefix}{mt[m2]}{st[s2]}","receivedAt":"{prefix}{mt[m3]}{st[s3]}"}}'
            )
        else:
            line = (
                f'{{"type":"{typ}","messageId":"{mid}","timestamp":"{iso_ms(t)}",{who},{body},'
                f'"context":{ctx},"sentAt":"{iso_ms(sent)}","receivedAt":"{iso_ms(received)}"}}'
            )
        heappush(self.heap, (t, self.seq, line))
        self.seq += 1
        counts = self.counts
        counts[typ] = counts.get(typ, 0) + 1
        return True
