"""The `activation-pipeline` command line: validate, run, generate, history."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from activation_pipeline.config import load_workspace, missing_environment, validate_file
from activation_pipeline.config.problems import Problem
from activation_pipeline.config.usage import referenced_events


def _timestamp(text: str) -> datetime:
    """Parse an ISO-8601 timestamp (a date alone means its midnight); naive times are UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 timestamp (e.g. 2026-11-01T00:00:00Z)"
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _print_problems(path: str, problems: Sequence[Problem], as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {"file": path, "valid": not problems, "problems": [p.to_dict() for p in problems]}, indent=2
            )
        )
    elif problems:
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    else:
        print(f"{path}: valid")


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate a workspace file; exit 1 with every problem listed."""
    workspace, problems = validate_file(args.path)
    if workspace is not None and args.check_env:
        problems = missing_environment(workspace)
    _print_problems(args.path, problems, args.json)
    return 1 if problems else 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the whole pipeline for a workspace headless and print a summary."""
    from activation_pipeline.defs.headless import pipeline_instance, run_pipeline

    workspace, problems = validate_file(args.path)
    if workspace is None:
        _print_problems(args.path, problems, as_json=False)
        return 1
    as_of = args.as_of or datetime.now(UTC).replace(microsecond=0)
    with pipeline_instance() as instance:
        summary = run_pipeline(
            str(Path(args.path).resolve()), as_of, instance, log_level="INFO" if args.verbose else "WARNING"
        )
    print(
        f"workspace {workspace.workspace} as of {as_of.isoformat()}: {'succeeded' if summary.success else 'FAILED'}"
    )
    for asset_key, figures in summary.materialisations.items():
        shown = ", ".join(f"{name}={value}" for name, value in figures.items() if not isinstance(value, str))
        print(f"  {asset_key}: {shown}")
    print(f"  runs: {', '.join(summary.run_ids)}")
    return 0 if summary.success else 1


def cmd_generate(args: argparse.Namespace) -> int:
    """Write deterministic Segment-spec sample events for a workspace."""
    from activation_pipeline.synthetic.generator import GeneratorSpec, write_events

    workspace = load_workspace(args.path) if args.path else None
    if args.out:
        out_dir = Path(args.out)
    elif workspace is not None and hasattr(workspace.sources.events, "path"):
        out_dir = workspace.resolve_path(workspace.sources.events.path)
    else:
        print("give --out DIR (the workspace's events source is not a file path)", file=sys.stderr)
        return 2
    spec = GeneratorSpec(
        profiles=args.profiles,
        events=args.events,
        seed=args.seed,
        end=args.end,
        days=args.days,
        extra_events=referenced_events(workspace) if workspace is not None else {},
    )
    summary = write_events(spec, out_dir, truth_path=Path(args.truth) if args.truth else None)
    print(
        f"wrote {summary.lines} lines ({summary.malformed} malformed) for {summary.profiles} profiles and "
        f"{summary.accounts} accounts in {len(summary.files)} files under {out_dir}"
    )
    for kind, count in sorted(summary.by_type.items()):
        print(f"  {kind}: {count}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Show every recorded change of a connection's settings."""
    from activation_pipeline.state.settings_history import format_history, history
    from activation_pipeline.state.store import open_state

    workspace = load_workspace(args.workspace)
    store = open_state(workspace.state_location())
    try:
        versions = history(store, workspace.workspace, args.connection)
    finally:
        store.dispose()
    if not versions:
        known = ", ".join(c.connection_id for c in workspace.connections)
        print(f"no settings recorded for {args.connection!r} (recorded at each run; connections: {known})")
        return 1
    print(format_history(versions))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="activation-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="validate a workspace file")
    validate.add_argument("path")
    validate.add_argument("--json", action="store_true", help="print the result as JSON")
    validate.add_argument(
        "--check-env", action="store_true", help="also report secret environment variables that are not set"
    )
    validate.set_defaults(func=cmd_validate)

    run = commands.add_parser("run", help="run the pipeline for a workspace, headless")
    run.add_argument("path")
    run.add_argument("--as-of", type=_timestamp, help="evaluation time, ISO-8601 (default: now)")
    run.add_argument("--verbose", action="store_true", help="show Dagster's run log")
    run.set_defaults(func=cmd_run)

    generate = commands.add_parser("generate", help="generate deterministic sample events")
    generate.add_argument("path", nargs="?", help="workspace file (events go to its events source path)")
    generate.add_argument("--out", help="output directory (default: the workspace's events path)")
    generate.add_argument("--profiles", type=int, default=3000)
    generate.add_argument("--events", type=int, default=100_000)
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--end", type=_timestamp, default=datetime(2026, 11, 1, tzinfo=UTC))
    generate.add_argument("--days", type=int, default=120)
    generate.add_argument("--truth", help="also write the ground-truth identity CSV here")
    generate.set_defaults(func=cmd_generate)

    history = commands.add_parser("history", help="show the settings history of a connection")
    history.add_argument("connection", help="connection id, e.g. audience.high_value_recent.meta_ads")
    history.add_argument(
        "--workspace", default=None, help="workspace file (default: $ACTIVATION_WORKSPACE or the sample)"
    )
    history.set_defaults(func=cmd_history)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `activation-pipeline` command."""
    args = build_parser().parse_args(argv)
    if getattr(args, "workspace", "unset") is None:
        from activation_pipeline.defs.resources import default_workspace_path

        args.workspace = default_workspace_path()
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
