"""`activation-pipeline ui`: the Dagster UI (`dg dev`) on a workspace, optionally wired to the sandbox.

With the sandbox, this process starts a fake server per destination and writes where they listen into a wiring
file; the code location reads it ($ACTIVATION_SANDBOX) and its resources send there, with the sandbox's own
state store and compute results, tagging every run `activation/sandbox=true`. Nothing in the workspace file
or the environment of the real destinations is touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import yaml

from activation_pipeline.orchestration.instance import write_instance_settings
from activation_pipeline.orchestration.resources import SANDBOX_ENV, write_sandbox_wiring
from activation_pipeline.orchestration.workspace import SAMPLE_WORKSPACE, WORKSPACE_ENV
from activation_pipeline.sandbox.workspace import SandboxSession, sandboxed

CODE_LOCATION_MODULE = "activation_pipeline.definitions"
LOCATION_NAME = "activation_pipeline"
WIRING_FILE = "ui-wiring.json"


@dataclass
class UiLaunch:
    """Everything `dg dev` is started with: the command, its environment and what it serves."""

    command: list[str]
    env: dict[str, str]
    home: Path
    url: str
    session: SandboxSession | None = None
    notes: list[str] = field(default_factory=list)


def workspace_file(home: Path) -> Path:
    """A Dagster workspace file in `home` loading the code location under its name, `activation_pipeline`."""
    location = {"module_name": CODE_LOCATION_MODULE, "location_name": LOCATION_NAME}
    path = home / "ui-workspace.yaml"
    path.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}), encoding="utf-8")
    return path


def dg_command(host: str, port: int, workspace: Path) -> list[str]:
    """`dg dev` serving the code location (the `dg` beside this Python; `dagster dev` if dg is missing)."""
    target = ["-w", str(workspace), "-h", host, "-p", str(port)]
    dg = Path(sys.executable).with_name("dg")
    if dg.exists() or shutil.which("dg"):
        return [str(dg) if dg.exists() else "dg", "dev", *target]
    return [sys.executable, "-m", "dagster", "dev", *target]


def default_home(workspace_path: Path) -> Path:
    """$DAGSTER_HOME, else `.dagster_home` beside the workspace file (runs are kept between sessions)."""
    return Path(os.environ.get("DAGSTER_HOME") or workspace_path.parent / ".dagster_home").resolve()


@contextmanager
def prepared(
    workspace_path: str | Path, *, sandbox: bool, host: str, port: int, say: Callable[[str], None]
) -> Iterator[UiLaunch]:
    """The instance settings written, the sandbox's fake servers running (when asked), and how to start dg dev."""
    path = Path(workspace_path).resolve()
    home = default_home(path)
    settings_file, fixed = write_instance_settings(home)
    for problem in fixed:
        say(f"instance: fixed in {settings_file}: {problem}")
    env = {**os.environ, "DAGSTER_HOME": str(home), WORKSPACE_ENV: str(path)}
    env.pop(SANDBOX_ENV, None)
    url = f"http://{host}:{port}"
    with ExitStack() as stack:
        session = None
        if sandbox:
            session = stack.enter_context(sandboxed(path))
            wiring = write_sandbox_wiring(session.state_directory / WIRING_FILE, session)
            env[SANDBOX_ENV] = str(wiring)
            for destination, server_url in session.urls.items():
                say(f"sandbox: {destination} -> fake server at {server_url}")
            say(f"sandbox: state store and compute results in {session.state_directory}")
        yield UiLaunch(dg_command(host, port, workspace_file(home)), env, home, url, session)


def sample_events_missing(workspace_path: Path) -> bool:
    """Whether this is the bundled sample and its events have not been generated yet."""
    events = SAMPLE_WORKSPACE.parent / "events"
    return workspace_path.resolve() == SAMPLE_WORKSPACE and not any(events.glob("*.jsonl"))


def _interrupted(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def events_end(directory: Path) -> datetime | None:
    """When daily event files (`YYYY-MM-DD.jsonl`) in `directory` end: midnight after the last day."""
    days = sorted(f.stem for f in directory.glob("*.jsonl"))
    try:
        return datetime.fromisoformat(days[-1]).replace(tzinfo=UTC) + timedelta(days=1) if days else None
    except ValueError:
        return None


def stale_events_note(end: datetime | None, now: datetime) -> str | None:
    """When events end days before `now`: how to evaluate as of their end instead (None when they are recent)."""
    if end is None or now - end < timedelta(days=2):
        return None
    return (
        f"note: the sample's events end {end.date().isoformat()}; runs launched from the UI evaluate as of when "
        f"they are created, so add the tag activation/as_of={end.isoformat()} to activation_job, or regenerate "
        "the events ending now (`activation-pipeline generate`)"
    )


def stale_sample_note(workspace_path: Path, now: datetime) -> str | None:
    """The note for the bundled sample when its generated events end days before `now`."""
    if workspace_path.resolve() != SAMPLE_WORKSPACE:
        return None
    return stale_events_note(events_end(SAMPLE_WORKSPACE.parent / "events"), now)


def serve(launch: UiLaunch) -> int:
    """Run `dg dev` until it exits or this process is interrupted (Ctrl-C reaches both: one process group;
    SIGTERM is passed on as SIGINT, so dg dev stops its webserver, daemon and code server)."""
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)  # also when started in the background, where SIGINT is ignored
    process = subprocess.Popen(launch.command, env=launch.env, cwd=launch.home)  # noqa: S603
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
