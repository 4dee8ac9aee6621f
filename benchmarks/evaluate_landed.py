"""Evaluation phases of the compute benchmark on events an earlier run generated and landed (not a test).

At 10M profiles / 100M events generating and landing the events takes about an hour; this reruns only the
phases after the black box, on `--out`/p<profiles> as `compute_benchmark.py` left it:

    .venv/bin/python benchmarks/evaluate_landed.py --profiles 10000000 --phases full,reference,compare
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import compute_benchmark as cb
from phases import run_phase

PHASES = ("full", "reference", "compare", "new", "incremental", "again")


def main() -> None:
    """Run the chosen phases in order and print their figures as JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, required=True)
    parser.add_argument("--out", type=Path, default=cb.ROOT / "benchmarks" / "out")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    parser.add_argument("--memory-limit", default="1200MB", help="DuckDB memory_limit of the product phases")
    parser.add_argument(
        "--reference-memory-limit",
        default=None,
        help="the reference's (default: DuckDB's own, 80%% of RAM: at 100M events it needs more than 1.2GB)",
    )
    args = parser.parse_args()
    chosen = args.phases.split(",")
    unknown = sorted(set(chosen) - set(PHASES))
    if unknown:
        parser.error(f"unknown phases {unknown}; choose from {', '.join(PHASES)}")
    out, ml = str(args.out / f"p{args.profiles}"), args.memory_limit
    t1, t2 = cb.AS_OF.isoformat(sep=" "), cb.AS_OF_2.isoformat(sep=" ")
    calls = {
        "full": (cb._phase_evaluate, out, t1, True, ml),
        "reference": (cb._phase_reference, out, t1, args.reference_memory_limit),
        "compare": (cb._phase_compare, out),
        "new": (cb._phase_new_events, out, args.profiles, ml),
        "incremental": (cb._phase_evaluate, out, t2, False, ml),
        "again": (cb._phase_full_again, out, t2, ml),
    }
    results = {name: run_phase(name, *calls[name]) for name in PHASES if name in chosen}
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
