"""The `activation-pipeline` command line: validate, run, plan, ledger, history, generate, serve, ui, instance."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from activation_pipeline.config import load_workspace, missing_environment, validate_file
from activation_pipeline.config.problems import Problem
from activation_pipeline.config.usage import referenced_events

if TYPE_CHECKING:
    from activation_pipeline.config import Workspace
    from activation_pipeline.orchestration.headless import RunSummary
    from activation_pipeline.orchestration.resources import ComputeResource, StateStoreResource


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
        from activation_pipeline.config.reachability import unreachable

        problems = missing_environment(workspace) + unreachable(workspace)
    _print_problems(args.path, problems, args.json)
    return 1 if problems else 0


def _say(line: str) -> None:
    """A progress line, shown at once."""
    print(f"  {line}", flush=True)


def _print_run(
    workspace_name: str,
    as_of: datetime,
    summary: RunSummary,
    instance_note: str,
    sandbox_requests: dict[str, int] | None = None,
) -> None:
    from activation_pipeline.orchestration.report import summary_tables

    print(
        f"workspace {workspace_name} as of {as_of.isoformat()}: {'succeeded' if summary.success else 'FAILED'}"
    )
    for line in summary_tables(summary.materialisations, sandbox_requests):
        print(line if line.startswith(("  ", "legend")) else f"\n{line}")
    for failure in summary.failures:
        print(f"  failed: {failure}")
    for step in summary.skipped:
        print(f"  skipped: {step} (an upstream step produced nothing; `--verbose` shows which and why)")
    print(f"\n{len(summary.run_ids)} Dagster runs, {instance_note}")


def _instance_note() -> str:
    """Where a headless run's Dagster runs are recorded; warns when $DAGSTER_HOME lacks the instance settings."""
    import os

    from activation_pipeline.orchestration.instance import check_instance

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return "recorded in a throwaway in-memory instance (set DAGSTER_HOME to keep them and see them in the UI)"
    for problem in check_instance(home):
        print(f"warning: {home}/dagster.yaml: {problem}; run `activation-pipeline instance`", file=sys.stderr)
    return f"recorded in the instance of DAGSTER_HOME={home} (they show in the UI)"


EXIT_UNDELIVERED = 3
"""`run` exit code when every run succeeded but a sync left too many records undelivered (failed or deferred)."""


def _report_undelivered(summary: RunSummary) -> bool:
    """Print each sync whose undelivered share is above the limit; True when there is one."""
    from activation_pipeline.orchestration.sync_metadata import UNDELIVERED_LIMIT, undelivered_share

    found = False
    for key, figures in summary.materialisations.items():
        share = undelivered_share(figures)
        if key.startswith("sync/") and share > UNDELIVERED_LIMIT:
            print(f"  undelivered: {key}: {share:.0%} of its records failed or wait for the next run "
                  f"(limit {UNDELIVERED_LIMIT:.0%}; see `activation-pipeline ledger` for the reasons)")  # fmt: skip
            found = True
    return found


def cmd_run(args: argparse.Namespace) -> int:
    """Run the whole pipeline for a workspace headless, with progress lines, then a table per stage."""
    from activation_pipeline.orchestration.headless import pipeline_instance, run_pipeline
    from activation_pipeline.orchestration.resources import SANDBOX_TAG, sandbox_resources
    from activation_pipeline.sandbox.workspace import sandboxed

    workspace, problems = validate_file(args.path)
    if workspace is None:
        _print_problems(args.path, problems, as_json=False)
        return 1
    as_of = args.as_of or datetime.now(UTC).replace(microsecond=0)
    level = "INFO" if args.verbose else "WARNING"
    note = _instance_note()
    with pipeline_instance() as instance:
        if args.sandbox:
            with sandboxed(args.path) as session:
                print(f"sandbox: {len(session.servers)} fake servers on 127.0.0.1; state and results in "
                      f"{session.state_directory}", flush=True)  # fmt: skip
                summary = run_pipeline(
                    str(session.workspace_path),
                    as_of,
                    instance,
                    level,
                    sync=not args.no_sync,
                    resources=sandbox_resources(session),
                    progress=_say,
                    tags={SANDBOX_TAG: "true"},
                )
                _print_run(workspace.workspace, as_of, summary, note, session.delivered())
        else:
            summary = run_pipeline(
                str(Path(args.path).resolve()), as_of, instance, level, sync=not args.no_sync, progress=_say
            )
            _print_run(workspace.workspace, as_of, summary, note)
    if not summary.success:
        return 1
    return EXIT_UNDELIVERED if _report_undelivered(summary) else 0


def _stores(workspace_path: str, sandbox: bool) -> tuple[Workspace, StateStoreResource, ComputeResource]:
    """The workspace, and its real state store and compute results, or the sandbox's."""
    from activation_pipeline.orchestration.resources import ComputeResource, StateStoreResource
    from activation_pipeline.sandbox.workspace import SANDBOX_STATE_DIR

    workspace = load_workspace(workspace_path)
    if not sandbox:
        return workspace, StateStoreResource(), ComputeResource()
    directory = str(Path(workspace_path).resolve().parent / SANDBOX_STATE_DIR)
    return workspace, StateStoreResource(directory=directory), ComputeResource(directory=directory)


def cmd_plan(args: argparse.Namespace) -> int:
    """Print what a sync of every connection would send, sending nothing."""
    from activation_pipeline.state.store import open_state
    from activation_pipeline.sync.delta import SyncMode
    from activation_pipeline.sync.runner import plan_connection

    workspace, state, compute = _stores(args.path, args.sandbox)
    sandbox = " --sandbox" if args.sandbox else ""
    try:
        view = compute.results(workspace)
    except FileNotFoundError as error:
        print(
            f"{error} (run `activation-pipeline run {args.path}{sandbox} --no-sync` first)", file=sys.stderr
        )
        return 1
    store = open_state(state.location(workspace))
    mode = SyncMode(args.mode)
    try:
        plans = [
            plan_connection(store, view, workspace, c, view.as_of, mode)
            for c in workspace.delivery_connections()
        ]
    finally:
        store.dispose()
    if args.json:
        print(json.dumps([{**p.__dict__, "mode": p.mode.value} for p in plans], indent=2))
        return 0
    which = "the sandbox's" if args.sandbox else "the"
    print(
        f"{mode.value} plan for {workspace.workspace} from {which} results as of {view.as_of.isoformat()}; "
        "nothing is sent"
    )
    header = (
        f"{'connection':48} {'adds':>7} {'removes':>7} {'updates':>7} {'refresh':>7} {'records':>8} {'calls':>6} "
        f"{'time':>9} {'unaddressable':>13} {'no consent':>10}"
    )
    print(header)
    for p in plans:
        took = "no limit" if p.seconds is None else f"{p.seconds:.1f} s"
        note = (
            " (first sync: baseline only)" if p.baseline_only else (" (first sync)" if p.first_sync else "")
        )
        print(
            f"{p.connection_id:48} {p.adds:>7} {p.removes:>7} {p.updates:>7} {p.refreshes:>7} {p.records:>8} "
            f"{p.api_calls:>6} {took:>9} {p.unaddressable:>13} {p.consent_left_out:>10}{note}"
        )
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    """Show what was sent to a destination about a profile, found by any identifier."""
    from activation_pipeline.state.ledger import find_in_ledger, format_lookup

    workspace, state, _ = _stores(args.workspace, args.sandbox)
    region = workspace.normalisation.default_region
    lookup = find_in_ledger(state.location(workspace), args.destination, args.identifier, region=region)
    print(f"{'sandbox' if args.sandbox else 'real'} deliveries of {workspace.workspace}:")
    print(
        format_lookup(lookup, args.identifier, args.destination, region=region, show_payloads=not args.brief)
    )
    if not lookup.rows and not args.sandbox:
        _, sandbox_state, _ = _stores(args.workspace, True)
        if Path(sandbox_state.location(workspace)).exists():
            other = find_in_ledger(
                sandbox_state.location(workspace), args.destination, args.identifier, region=region
            )
            if other.rows:
                print(f"(the sandbox has {len(other.rows)} deliveries for it: add --sandbox to see them)")
    return 0 if lookup.rows else 1


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
        end=args.end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0),
        days=args.days,
        extra_events=referenced_events(workspace) if workspace is not None else {},
    )
    summary = write_events(spec, out_dir, truth_path=Path(args.truth) if args.truth else None)
    print(
        f"wrote {summary.lines} lines ({summary.malformed} malformed) for {summary.profiles} profiles and "
        f"{summary.accounts} accounts in {len(summary.files)} files under {out_dir}, "
        f"ending {spec.end.isoformat()}"
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
        known = ", ".join(c.connection_id for c in workspace.delivery_connections())
        print(f"no settings recorded for {args.connection!r} (recorded at each run; connections: {known})")
        return 1
    print(format_history(versions))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the Profile API of a workspace until interrupted; refuses to start without its access token."""
    from activation_pipeline.serving.access import NoAccessTokenError
    from activation_pipeline.serving.server import serve

    workspace, problems = validate_file(args.path)
    if workspace is None:
        _print_problems(args.path, problems, as_json=False)
        return 1
    try:
        serve(args.path, args.host, args.port, args.workers)
    except NoAccessTokenError as error:
        print(f"not started: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Start the Dagster UI (`dg dev`) on a workspace, with the sandbox's fake servers when asked."""
    from activation_pipeline.orchestration import ui

    workspace, problems = validate_file(args.workspace)
    if workspace is None:
        _print_problems(args.workspace, problems, as_json=False)
        return 1
    path = Path(args.workspace).resolve()
    if ui.sample_events_missing(path):
        print("the sample has no events yet: generating them, ending now")
        cmd_generate(build_parser().parse_args(["generate", str(path)]))
    note = ui.stale_sample_note(path, datetime.now(UTC))
    if note:
        print(note)
    if not args.sandbox:
        missing = missing_environment(workspace)
        if missing:
            print(f"warning: {len(missing)} secret(s) not set, syncs needing them fail "
                  "(`--sandbox` sends to local fake servers instead):", file=sys.stderr)  # fmt: skip
            for problem in missing:
                print(f"  - {problem}", file=sys.stderr)
    with ui.prepared(path, sandbox=args.sandbox, host=args.host, port=args.port, say=print) as launch:
        print(f"DAGSTER_HOME={launch.home} (runs are kept there; its dagster.yaml holds the resync limit)")
        print(f"Dagster UI: {launch.url}   ({' '.join(launch.command[:2])}; Ctrl-C stops it"
              f"{' and the fake servers' if args.sandbox else ''})", flush=True)  # fmt: skip
        return ui.serve(launch)


def cmd_instance(args: argparse.Namespace) -> int:
    """Write the pipeline's instance settings into `$DAGSTER_HOME/dagster.yaml` (or `--home`)."""
    from activation_pipeline.orchestration.instance import check_instance, write_instance_settings

    try:
        path, fixed = write_instance_settings(args.home)
    except ValueError as error:
        print(f"{error} (or give --home DIR)", file=sys.stderr)
        return 2
    for problem in fixed:
        print(f"{path}: fixed: {problem}")
    left = check_instance(path.parent)
    print(f"{path}: {'resync limit and telemetry off in place' if not left else '; '.join(left)}")
    return 1 if left else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="activation-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="validate a workspace file")
    validate.add_argument("path")
    validate.add_argument("--json", action="store_true", help="print the result as JSON")
    validate.add_argument(
        "--check-env",
        action="store_true",
        help="also report secret environment variables that are not set and databases that cannot be reached",
    )
    validate.set_defaults(func=cmd_validate)

    run = commands.add_parser("run", help="run the pipeline for a workspace, headless")
    run.add_argument("path")
    run.add_argument("--as-of", type=_timestamp, help="evaluation time, ISO-8601 (default: now)")
    run.add_argument("--verbose", action="store_true", help="show Dagster's run log")
    run.add_argument(
        "--sandbox", action="store_true", help="send to local fake servers instead of the real APIs"
    )
    run.add_argument("--no-sync", action="store_true", help="compute only; send nothing")
    run.set_defaults(func=cmd_run)

    plan = commands.add_parser("plan", help="dry run: what each connection's next sync would send")
    plan.add_argument("path")
    plan.add_argument("--mode", choices=["incremental", "resync"], default="incremental")
    plan.add_argument("--json", action="store_true")
    plan.add_argument("--sandbox", action="store_true", help="plan from the sandbox's results and state")
    plan.set_defaults(func=cmd_plan)

    ledger = commands.add_parser(
        "ledger", help="what was sent about a profile, and what the destination answered"
    )
    ledger.add_argument(
        "identifier", help="any identifier of the profile (email, phone, user id, ...) or its id"
    )
    ledger.add_argument("--destination", default=None, help="only this destination id")
    ledger.add_argument(
        "--workspace", default=None, help="workspace file (default: $ACTIVATION_WORKSPACE or the sample)"
    )
    ledger.add_argument("--brief", action="store_true", help="leave out the payloads")
    ledger.add_argument("--sandbox", action="store_true", help="what the sandbox sent to its fake servers")
    ledger.set_defaults(func=cmd_ledger)

    generate = commands.add_parser("generate", help="generate deterministic sample events")
    generate.add_argument("path", nargs="?", help="workspace file (events go to its events source path)")
    generate.add_argument("--out", help="output directory (default: the workspace's events path)")
    generate.add_argument("--profiles", type=int, default=3000)
    generate.add_argument("--events", type=int, default=100_000)
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument(
        "--end",
        type=_timestamp,
        default=None,
        help="when the events end (default: now, to the hour, so the UI's 'now' finds recent events)",
    )
    generate.add_argument("--days", type=int, default=120)
    generate.add_argument("--truth", help="also write the ground-truth identity CSV here")
    generate.set_defaults(func=cmd_generate)

    history = commands.add_parser("history", help="show the settings history of a connection")
    history.add_argument("connection", help="connection id, e.g. audience.high_value_recent.meta_ads")
    history.add_argument(
        "--workspace", default=None, help="workspace file (default: $ACTIVATION_WORKSPACE or the sample)"
    )
    history.set_defaults(func=cmd_history)

    serve = commands.add_parser("serve", help="serve the Profile API (Segment-compatible) over HTTP")
    serve.add_argument("path")
    serve.add_argument("--host", default=None, help="address to listen on (default: serving.host)")
    serve.add_argument("--port", type=int, default=None, help="port (default: serving.port)")
    serve.add_argument("--workers", type=int, default=None, help="processes (default: serving.workers)")
    serve.set_defaults(func=cmd_serve)

    ui = commands.add_parser("ui", help="start the Dagster UI (dg dev) on a workspace")
    ui.add_argument(
        "workspace",
        nargs="?",
        default=None,
        help="workspace file (default: $ACTIVATION_WORKSPACE or the sample)",
    )
    ui.add_argument(
        "--sandbox",
        action="store_true",
        help="start a fake server per destination and send there, no secrets",
    )
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    instance = commands.add_parser(
        "instance", help="write the resync limit and telemetry off into $DAGSTER_HOME/dagster.yaml"
    )
    instance.add_argument("--home", default=None, help="the instance folder (default: $DAGSTER_HOME)")
    instance.set_defaults(func=cmd_instance)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `activation-pipeline` command."""
    args = build_parser().parse_args(argv)
    if getattr(args, "workspace", "unset") is None:
        from activation_pipeline.orchestration.workspace import default_workspace_path

        args.workspace = default_workspace_path()
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
