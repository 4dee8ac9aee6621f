"""Per-batch figures of list destinations: members sent per identifier type, invalid values, platform counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from activation_pipeline.destinations.normalise.platforms import PlatformRules
from activation_pipeline.destinations.normalise.record import NormalisedRecord

ALWAYS_REPORTED = ("email", "phone", "mobile_id")
"""Kinds whose `sent_with_*` / `invalid_*` figures are always present (0 when none), so plots stay continuous."""


class ListFigures:
    """Accumulates numeric figures for one batch; `metrics()` gives the `BatchResult.metrics` mapping."""

    def __init__(self, rules: PlatformRules) -> None:
        """Start empty for a platform's field rules."""
        self.rules = rules
        self.counts: defaultdict[str, float] = defaultdict(float)
        for kind in ALWAYS_REPORTED:
            self.counts[f"sent_with_{kind}"] += 0
            self.counts[f"invalid_{kind}"] += 0
        for name in (
            "records",
            "members_sent",
            "platform_received",
            "platform_invalid",
            "no_usable_identifier",
        ):
            self.counts[name] += 0

    def normalised(self, record: NormalisedRecord) -> None:
        """Count one record's invalid, pre-hashed and unmapped values."""
        self.counts["records"] += 1
        for kind, n in record.invalid.items():
            self.counts[f"invalid_{kind}"] += n
        pre = sum(record.prehashed.values())
        if pre:
            self.counts["prehashed_values"] += pre
        if record.unmapped:
            self.counts["unmapped_values"] += record.unmapped

    def sent(self, record: NormalisedRecord) -> None:
        """Count one member the platform accepted, once per identifier kind it carried."""
        self.counts["members_sent"] += 1
        for kind in record.kinds(self.rules):
            self.counts[f"sent_with_{kind}"] += 1

    def add(self, name: str, value: float = 1) -> None:
        """Add to any other figure (platform_received, rows_sent, ...)."""
        self.counts[name] += value

    def http(self, result: Any) -> None:
        """Count the attempts and retries of one `HttpResult`."""
        self.counts["http_requests"] += result.attempts
        self.counts["http_retries"] += result.retries

    def metrics(self, extra: Mapping[str, float] | None = None) -> dict[str, float]:
        """All figures as floats, plus `extra` (e.g. the HTTP sender's per-batch counters)."""
        out = {k: float(v) for k, v in self.counts.items()}
        for k, v in (extra or {}).items():
            out[k] = out.get(k, 0.0) + float(v)
        return out
