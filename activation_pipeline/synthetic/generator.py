"""Deterministic generator of messy, realistic e-commerce Segment messages (JSON lines)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from heapq import heappop
from pathlib import Path
from random import Random

from activation_pipeline.synthetic.behaviour import Shopper
from activation_pipeline.synthetic.emitter import DAY_MS, Emitter, day_text
from activation_pipeline.synthetic.identity import IdFactory
from activation_pipeline.synthetic.malformed import Corrupter
from activation_pipeline.synthetic.people import Population
from activation_pipeline.synthetic.pools import build_products

# Relative session rate by UTC hour (mean 1.0): quiet nights, busy evenings.
_HOURLY = (0.55, 0.45, 0.4, 0.4, 0.45, 0.55, 0.7, 0.85, 1.0, 1.05, 1.1, 1.15,
           1.2, 1.2, 1.2, 1.25, 1.3, 1.35, 1.45, 1.5, 1.45, 1.3, 1.05, 0.8)  # fmt: skip
_HOURLY_NORM = tuple(h * 24 / sum(_HOURLY) for h in _HOURLY)
_PRIOR_SESSIONS = 20
_NEVER = 1 << 62
_PRIOR_PER_SESSION = 9.0


@dataclass(frozen=True)
class GeneratorSpec:
    """What to generate: population size, volume, seed, time window, accounts, malformed share, extra events."""

    profiles: int = 3000
    events: int = 100_000
    seed: int = 7
    end: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    days: int = 120
    accounts: int | None = None
    malformed_share: float = 0.002
    extra_events: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationSummary:
    """What write_events produced: files, line counts, messages by type, people and accounts that appeared."""

    files: list[Path]
    lines: int
    malformed: int
    by_type: dict[str, int]
    profiles: int
    accounts: int


class _Run:
    """One generation pass: yields lines and keeps the current timestamp and totals for the summary."""

    def __init__(self, spec: GeneratorSpec, keep_truth: bool) -> None:
        if spec.profiles < 1:
            raise ValueError("profiles must be at least 1")
        if spec.events < 0:
            raise ValueError("events must not be negative")
        if spec.days < 1:
            raise ValueError("days must be at least 1")
        if not 0.0 <= spec.malformed_share < 0.5:
            raise ValueError("malformed_share must be in [0, 0.5)")
        end = spec.end if spec.end.tzinfo is not None else spec.end.replace(tzinfo=UTC)
        end_ms = int(end.timestamp() * 1000)
        self.spec = spec
        self.start_ms = int((end - timedelta(days=spec.days)).timestamp() * 1000)
        self.end_ms = end_ms
        encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        rng = Random(spec.seed)  # noqa: S311 -- reproducible simulation, not cryptography
        self.rng = rng
        self.emitter = Emitter(rng, end_ms)
        accounts = spec.accounts if spec.accounts is not None else max(1, spec.profiles // 25)
        self.population = Population(
            rng, IdFactory(rng), spec.profiles, accounts, keep_truth, encode, self.start_ms
        )
        self.shopper = Shopper(
            rng, self.emitter, self.population, build_products(rng), spec.extra_events, encode
        )
        # A separate stream, so the malformed share never shifts the valid events.
        self.bad_rng = Random(spec.seed * 1_000_003 + 17)  # noqa: S311
        self.corrupter = Corrupter(self.bad_rng, encode)
        self.sessions = 0
        self.ts = 0
        self.malformed = 0

    def lines(self) -> Iterator[str]:
        """Every output line in timestamp order; `ts` holds the current line's timestamp (epoch ms)."""
        spec = self.spec
        rng = self.rng
        em = self.emitter
        heap = em.heap
        end_ms = self.end_ms
        pick = self.population.pick
        session = self.shopper.session
        corrupt = self.corrupter.corrupt
        target = round(spec.events * (1.0 - spec.malformed_share))
        until_bad = self._first_bad_gap()
        t = float(self.start_ms)
        while em.seq < target:
            remaining = target - em.seq
            per_session = (em.seq + _PRIOR_PER_SESSION * _PRIOR_SESSIONS) / (self.sessions + _PRIOR_SESSIONS)
            rate = remaining / (per_session * max(end_ms - t, 1.0))
            t += rng.expovariate(rate * _HOURLY_NORM[int(t // 3_600_000) % 24])
            if t >= end_ms:
                break
            while heap and heap[0][0] <= t:
                self.ts, _, line = heappop(heap)
                if until_bad <= 0:  # a malformed copy goes just before this line, at the same position
                    self.malformed += 1
                    yield corrupt(line)
                    until_bad = self._bad_gap()
                until_bad -= 1
                yield line
            self.sessions += 1
            session(t, pick(t, end_ms))
        while heap:
            self.ts, _, line = heappop(heap)
            if until_bad <= 0:
                self.malformed += 1
                yield corrupt(line)
                until_bad = self._bad_gap()
            until_bad -= 1
            yield line

    def _first_bad_gap(self) -> int:
        """Lines before the first malformed one: capped so a spec of 1000+ events always gets one."""
        gap = self._bad_gap()
        return gap if gap == _NEVER else min(gap, max(1, self.spec.events // 2))

    def _bad_gap(self) -> int:
        share = self.spec.malformed_share
        if share <= 0:
            return _NEVER
        return int(self.bad_rng.expovariate(share))

    def truth_rows(self) -> Iterator[tuple[str, str, str]]:
        """(person_id, identifier_type, value) for every identifier emitted, people in order of appearance."""
        for p in self.population.people:
            if p.truth:
                for kind, value in p.truth:
                    yield p.pid, kind, value


def generate_lines(spec: GeneratorSpec) -> Iterator[str]:
    """Yield JSON lines (and a few malformed lines) in timestamp order, deterministically for a spec."""
    yield from _Run(spec, keep_truth=False).lines()


def write_events(spec: GeneratorSpec, out_dir: Path, *, truth_path: Path | None = None) -> GenerationSummary:
    """Write one `YYYY-MM-DD.jsonl` per UTC day into out_dir (replacing its .jsonl files), plus optional truth CSV."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted(out_dir.glob("*.jsonl")):
        old.unlink()
    run = _Run(spec, keep_truth=truth_path is not None)
    files: list[Path] = []
    lines = 0
    day = -1
    buffer: list[str] = []
    handle = None
    try:
        for line in run.lines():
            line_day = run.ts // DAY_MS
            if line_day != day:
                if handle is not None:
                    if buffer:
                        handle.write("\n".join(buffer) + "\n")
                    buffer.clear()
                    handle.close()
                day = line_day
                path = out_dir / f"{day_text(day)}.jsonl"
                files.append(path)
                handle = path.open("w", encoding="utf-8", newline="\n")
            buffer.append(line)
            if len(buffer) >= 8192:
                assert handle is not None
                handle.write("\n".join(buffer) + "\n")
                buffer.clear()
            lines += 1
        if handle is not None and buffer:
            handle.write("\n".join(buffer) + "\n")
    finally:
        if handle is not None:
            handle.close()
    if truth_path is not None:
        truth_path = Path(truth_path)
        truth_path.parent.mkdir(parents=True, exist_ok=True)
        with truth_path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(("person_id", "identifier_type", "value"))
            writer.writerows(run.truth_rows())
    return GenerationSummary(
        files=files,
        lines=lines,
        malformed=run.malformed,
        by_type=dict(sorted(run.emitter.counts.items())),
        profiles=len(run.population.people),
        accounts=len(run.shopper.grouped_accounts),
    )
