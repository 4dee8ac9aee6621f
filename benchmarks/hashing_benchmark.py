"""Hashing benchmark: email normalise + SHA-256 throughput (DESIGN target: at least 1.5M identifiers/s).

Usage: `.venv/bin/python benchmarks/hashing_benchmark.py [--n 1000000] [--repeat 3] [--processes 2]`

Measures, on messy synthetic emails (mixed case, padding, gmail dots and +tags, 1% invalid, 1% pre-hashed):
- `sha256 only`: the ceiling, hexdigest of pre-normalised bytes in a tight loop;
- `meta` / `google`: `hash_emails` (trim, lowercase, validate, Google's gmail rules, hash), one process;
- `meta x N processes`: `hash_emails_parallel` over N worker processes (hashing holds the GIL);
- `records`: `RecordNormaliser` over list-destination payloads (one email each), records per second.
Best of `--repeat` runs; prints one line per measure and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

from activation_pipeline.destinations.facebook_custom_audiences.rules import FACEBOOK
from activation_pipeline.destinations.normalise import RecordNormaliser, hash_emails, sha256_hex
from activation_pipeline.destinations.normalise.bulk import hash_emails_parallel
from activation_pipeline.destinations.normalise.hashing import fast_sha256

DOMAINS = ("gmail.com", "Gmail.com", "yahoo.com", "outlook.com", "example.co.uk", "googlemail.com", "acme.io")


def emails(n: int, seed: int = 7) -> list[str]:
    """`n` messy emails, deterministic."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.01:
            out.append(f"not an email {i}")
        elif roll < 0.02:
            out.append(sha256_hex(f"pre{i}@example.com").upper())
        else:
            first = rng.choice(("Anna", "ben", "CHLOE", "d.j", "Émile"))
            tag = f"+news{i % 7}" if rng.random() < 0.1 else ""
            pad = " " if rng.random() < 0.2 else ""
            out.append(f"{pad}{first}.{i}{tag}@{rng.choice(DOMAINS)}{pad}")
    return out


def best(fn: Callable[[], Any], n: int, repeat: int) -> float:
    """Best throughput (items/s) of `repeat` runs."""
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - start))
    return max(rates)


def main() -> None:
    """Run the measures and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    values = emails(args.n)
    ready = [v.strip().lower().encode() for v in values]
    sha = fast_sha256
    results = {
        "sha256 only": best(lambda: [sha(b).hexdigest() for b in ready], args.n, args.repeat),
        "meta": best(lambda: hash_emails(values), args.n, args.repeat),
        "google": best(lambda: hash_emails(values, google=True), args.n, args.repeat),
        f"meta x {args.processes} processes": best(
            lambda: hash_emails_parallel(values, processes=args.processes), args.n, args.repeat
        ),
    }
    payloads = [{"identifiers": {"email": [v]}, "traits": {}} for v in values[:200_000]]
    normaliser = RecordNormaliser(FACEBOOK)
    results["records (RecordNormaliser, 1 email each)"] = best(
        lambda: normaliser.normalise_many(payloads), len(payloads), args.repeat
    )
    for name, rate in results.items():
        print(f"{name:45s} {rate / 1e6:6.2f} M/s")
    print(json.dumps({k: round(v) for k, v in results.items()}))


if __name__ == "__main__":
    main()
