"""`dagster dev` end to end: two workspaces served by one code location, driven only over GraphQL.

Two copies of the sample (small generated events, fake destination servers, evaluated headless first so the
syncs have results to read) are served by one code location (one workspace component each, with the sandbox's
resources) loaded by one `dagster dev` (webserver and daemon) in a subprocess, with a temporary DAGSTER_HOME
holding the repository's `dagster.yaml` (so the run-queue tag limit applies as well). The tests check the
asset lineage of each workspace under its own keys, then request three resyncs the way the Launchpad does
(each workspace's `request_resync`): two for workspace A, one for workspace B. The resync sensors must run
A's two one after the other, and B's alongside A's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests
import yaml

from activation_pipeline.orchestration.headless import run_pipeline
from activation_pipeline.orchestration.resources import sandbox_resources
from activation_pipeline.orchestration.resync import REQUEST_JOB
from activation_pipeline.orchestration.scope import (
    RESYNC_REQUEST_TAG,
    RESYNC_WORKSPACE_TAG,
    SYNC_MODE_TAG,
    Scope,
)
from activation_pipeline.orchestration.sensors import SENSOR_INTERVAL_ENV
from activation_pipeline.orchestration.sync_assets import sync_job_name
from activation_pipeline.sandbox.workspace import SandboxSession, sandboxed
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
REPOSITORY = "__repository__"  # the repository name of a code location built from a `Definitions`
LOCATION = "activation_e2e"
END = datetime(2026, 11, 1, tzinfo=UTC)
SPEC = GeneratorSpec(profiles=80, events=2000, seed=11, end=END, days=10)
SLOW = "audience.newsletter_engaged.loyalty_function"  # the function below makes its resync take seconds
FAST = "audience.cart_abandoners.braze"
SLOW_AUDIENCE = "newsletter_engaged"
CALL_SECONDS = 0.4
LOAD_TIMEOUT = 300.0  # generous: CI machines are shared, and each run starts subprocesses
RESYNC_TIMEOUT = 360.0
PARTITION_TAG = "dagster/partition"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
DESTINATIONS = ["meta_ads", "google_ads", "marketo", "braze", "iterable", "loyalty_function", "crm_hook"]

SLOW_FUNCTION = f'''"""The sample's loyalty function, slowed down so that a resync takes seconds; logs every call."""

import time
from pathlib import Path

CALLS = Path(__file__).with_name("calls.log")


def _call(kind, event):
    time.sleep({CALL_SECONDS})
    with CALLS.open("a") as log:
        log.write(kind + "\\n")
    return {{"user": event.get("userId") or event.get("anonymousId")}}


def on_track(event, settings):
    return _call("track", event)


def on_identify(event, settings):
    return _call("identify", event)
'''

# ----------------------------------------------------------------------------------------------- GraphQL
LOCATIONS = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
    ... on PythonError { message }
  }
}"""

REPOSITORY_CONTENTS = """
query ($location: String!, $repository: String!) {
  repositoryOrError(repositorySelector: {repositoryLocationName: $location, repositoryName: $repository}) {
    __typename
    ... on Repository {
      assetNodes { assetKey { path } groupName isPartitioned dependencyKeys { path } }
      jobs { name }
      sensors { name sensorState { status } }
    }
    ... on Error { message }
  }
}"""

LAUNCH_RUN = """
mutation ($location: String!, $repository: String!, $job: String!, $config: RunConfigData!) {
  launchRun(executionParams: {
    selector: {repositoryLocationName: $location, repositoryName: $repository, jobName: $job}
    runConfigData: $config
  }) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}"""

RUNS = """
query ($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId jobName status creationTime startTime endTime tags { key value } } }
    ... on Error { message }
  }
}"""


@dataclass
class Run:
    """A run as the GraphQL API reports it."""

    run_id: str
    job: str
    status: str
    start: float | None
    end: float | None
    tags: dict[str, str]

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Run:
        return cls(
            raw["runId"],
            raw["jobName"],
            raw["status"],
            raw["startTime"],
            raw["endTime"],
            {t["key"]: t["value"] for t in raw["tags"]},
        )

    def __str__(self) -> str:
        return f"{self.job} {self.tags.get(PARTITION_TAG, '')} {self.status} [{self.start} - {self.end}]"


@dataclass
class DagsterDev:
    """A running `dagster dev`: its GraphQL endpoint and its output."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def tail(self, lines: int = 80) -> str:
        """The end of the server's output, for failure messages."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def query(self, text: str, **variables: Any) -> dict[str, Any]:
        """Run a GraphQL query or mutation; fails the test on GraphQL errors."""
        response = requests.post(self.url, json={"query": text, "variables": variables}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def runs(self, **run_filter: Any) -> list[Run]:
        """The runs matching a `RunsFilter`."""
        found = self.query(RUNS, filter=run_filter)["runsOrError"]
        assert found["__typename"] == "Runs", found
        return [Run.of(raw) for raw in found["results"]]

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float, every: float = 1.0) -> None:
        """Poll `check` until it holds; fail with the server's output after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not check():
            if self.process.poll() is not None:
                pytest.fail(
                    f"dagster dev exited ({self.process.returncode}) waiting for {what}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.tail()}")
            time.sleep(every)


@dataclass
class Workspace:
    """One prepared copy of the sample, served beside the other by the one code location."""

    name: str
    session: SandboxSession
    audience_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def scope(self) -> Scope:
        return Scope(self.name)

    @property
    def calls_log(self) -> Path:
        return self.session.workspace_path.parent / "functions" / "calls.log"


@dataclass
class Deployment:
    """Everything the tests share: the two workspaces and the server loading both."""

    a: Workspace
    b: Workspace
    dagster: DagsterDev


# ----------------------------------------------------------------------------------------------- setup
def _copy_sample(root: Path, name: str) -> Path:
    """A copy of the sample named `name`, with small generated events and a slow destination function."""
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("events", "state", ".dagster_home"))
    path = root / "workspace.yml"
    text = path.read_text()
    assert "\nworkspace: acme-shop\n" in text
    path.write_text(text.replace("\nworkspace: acme-shop\n", f"\nworkspace: {name}\n", 1))
    (root / "functions" / "loyalty.py").write_text(SLOW_FUNCTION)
    write_events(SPEC, root / "events")
    return path


def _evaluate(session: SandboxSession, resources: dict[str, object]) -> dict[str, int]:
    """Land and evaluate headless (exporting results for the syncs); the audience sizes."""
    with dg.DagsterInstance.ephemeral() as instance:
        summary = run_pipeline(str(session.workspace_path), END, instance, sync=False, resources=resources)
    assert summary.success, summary.failures
    return {
        key.removeprefix("audiences/"): int(figures["size"])
        for key, figures in summary.materialisations.items()
        if key.startswith("audiences/")
    }


def _workspace_file(directory: Path, workspaces: list[Workspace], state_directory: Path) -> Path:
    """A `workspace.yaml` with one code location serving every workspace (a component each), wired to the
    fake servers and the sandbox's state stores by its resources."""
    resources = sandbox_resources(*(w.session for w in workspaces), state_directory=state_directory)
    components = ", ".join(
        f"dg.build_defs_for_component(WorkspaceComponent(path={str(w.session.workspace_path)!r}))"
        for w in workspaces
    )
    module = directory / "location.py"
    module.write_text(
        "import dagster as dg\n\n"
        "from activation_pipeline.orchestration.resources import ComputeResource, DeliveryResource, StateStoreResource\n"
        "from activation_pipeline.orchestration.workspace import WorkspaceComponent, default_resources\n\n"
        f"resources = {{**default_resources(), 'state': StateStoreResource(**{resources['state'].model_dump()!r}),"
        f" 'compute': ComputeResource(**{resources['compute'].model_dump()!r}),"
        f" 'delivery': DeliveryResource(**{resources['delivery'].model_dump()!r})}}\n"
        f"defs = dg.Definitions.merge({components}, dg.Definitions(resources=resources, executor=dg.in_process_executor))\n"
    )
    entry = {"relative_path": str(module), "location_name": LOCATION, "working_directory": str(REPO)}
    path = directory / "workspace.yaml"
    path.write_text(yaml.safe_dump({"load_from": [{"python_file": entry}]}, sort_keys=False))
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT the process group `dagster dev` leads; SIGKILL whatever is left after a grace period."""
    with suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    with suppress(ProcessLookupError):  # the group outlives dagster dev if a child (code server, run) did
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _wait_loaded(dagster: DagsterDev, names: set[str]) -> None:
    """Wait until every code location has loaded; fail at once with the error of one that cannot."""

    def loaded() -> bool:
        try:
            found = dagster.query(LOCATIONS)["workspaceOrError"]
        except requests.RequestException:  # not serving yet
            return False
        assert found["__typename"] == "Workspace", found
        entries = {e["name"]: e for e in found["locationEntries"]}
        if not names <= set(entries) or any(entries[n]["loadStatus"] != "LOADED" for n in names):
            return False
        for name in names:
            location = entries[name]["locationOrLoadError"]
            assert location["__typename"] == "RepositoryLocation", f"{name} failed to load: {location}"
        return True

    dagster.wait_for(f"code locations {sorted(names)} to load", loaded, LOAD_TIMEOUT)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Workspaces A and B prepared and sandboxed, and `dagster dev` serving both; stopped afterwards."""
    root = tmp_path_factory.mktemp("dagster_dev")
    state_directory = root / "sandbox_state"
    with ExitStack() as stack:
        workspaces = []
        for name, folder in (("acme-shop", "workspace_a"), ("other-shop", "workspace_b")):
            session = stack.enter_context(sandboxed(_copy_sample(root / folder, name)))
            workspace = Workspace(name, session)
            resources = sandbox_resources(session, state_directory=state_directory)
            workspace.audience_sizes = _evaluate(session, resources)
            workspaces.append(workspace)

        home = root / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), SENSOR_INTERVAL_ENV: "1"}
        env.pop("ACTIVATION_WORKSPACE", None)
        port = _free_port()
        log = root / "dagster_dev.log"
        workspace_file = _workspace_file(root, workspaces, state_directory)
        command = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace_file)]
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*command, "-h", "127.0.0.1", "-p", str(port)],
                cwd=root,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        stack.callback(_stop, process)
        dagster = DagsterDev(f"http://127.0.0.1:{port}/graphql", log, process)
        _wait_loaded(dagster, {LOCATION})
        yield Deployment(workspaces[0], workspaces[1], dagster)


# ----------------------------------------------------------------------------------------------- tests
def test_each_workspace_shows_its_lineage_under_its_own_keys(deployment: Deployment) -> None:
    """Per workspace, under its name: config -> events -> profiles -> traits -> one asset per audience ->
    the sync asset of each destination it is sent to; its own jobs and sensors."""
    repository = deployment.dagster.query(REPOSITORY_CONTENTS, location=LOCATION, repository=REPOSITORY)[
        "repositoryOrError"
    ]
    assert repository["__typename"] == "Repository", repository
    nodes = {"/".join(n["assetKey"]["path"]): n for n in repository["assetNodes"]}
    upstream = {key: {"/".join(d["path"]) for d in n["dependencyKeys"]} for key, n in nodes.items()}
    jobs = {j["name"] for j in repository["jobs"]}
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    for workspace in (deployment.a, deployment.b):
        ws, scope = workspace.name, workspace.scope
        assert (
            upstream[f"{ws}/events"] == {f"{ws}/workspace_config"}
            and not nodes[f"{ws}/events"]["isPartitioned"]
        )
        assert upstream[f"{ws}/profiles"] == {f"{ws}/workspace_config", f"{ws}/events"}
        assert f"{ws}/traits/total_revenue_180d" in upstream[f"{ws}/audiences/high_value_recent"]
        assert f"{ws}/audiences/high_value_recent" in upstream[f"{ws}/sync/meta_ads"]
        assert f"{ws}/audiences/newsletter_engaged" in upstream[f"{ws}/sync/loyalty_function"]
        assert f"{ws}/traits/favourite_category" in upstream[f"{ws}/sync/crm_hook"]
        for destination in DESTINATIONS:
            key = f"{ws}/sync/{destination}"
            assert f"{ws}/sync_inputs" in upstream[key], key
            assert nodes[key]["groupName"] == scope.group("sync") and nodes[key]["isPartitioned"], key
        assert nodes[f"{ws}/workspace_config"]["groupName"] == scope.group("config")
        assert {
            scope.name(REQUEST_JOB),
            scope.name("activation_job"),
            sync_job_name(scope, "loyalty_function"),
            sync_job_name(scope, "braze"),
        } <= jobs
        assert sensors[scope.name("connection_partitions_sensor")] == "RUNNING"
        assert sensors[scope.name("resync_sensor")] == "RUNNING"
    assert len(sensors) == 4


def _request_resync(dagster: DagsterDev, workspace: Workspace, connection: str) -> str:
    """Launch `request_resync` as the Launchpad does; the run id."""
    config = {"connection": connection, "reason": "e2e: settings changed"}
    scope = workspace.scope
    result = dagster.query(
        LAUNCH_RUN,
        location=LOCATION,
        repository=REPOSITORY,
        job=scope.name(REQUEST_JOB),
        config={"ops": {scope.name("record_resync_request"): {"config": config}}},
    )["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    run_id: str = result["run"]["runId"]
    return run_id


def _finished(dagster: DagsterDev, runs: Callable[[], list[Run]], count: int) -> Callable[[], bool]:
    """A check: `count` runs exist and all have finished; fails at once if one did not succeed."""

    def check() -> bool:
        found = runs()
        failed = [r for r in found if r.status in TERMINAL - {"SUCCESS"}]
        assert not failed, f"runs did not succeed: {[str(r) for r in failed]}\n{dagster.tail()}"
        return len(found) == count and all(r.status == "SUCCESS" for r in found)

    return check


def test_resyncs_run_one_at_a_time_per_workspace_and_in_parallel_across(deployment: Deployment) -> None:
    """Two resync requests for A and one for B: A's run one after the other, B's is not held back by A's."""
    dagster, a, b = deployment.dagster, deployment.a, deployment.b
    slow_size = a.audience_sizes[SLOW_AUDIENCE]
    assert 5 <= slow_size <= 40, a.audience_sizes  # enough calls to take seconds, few enough to stay quick
    assert a.audience_sizes["cart_abandoners"] > 0, a.audience_sizes
    braze = a.session.servers["braze"]
    braze_before = len(braze.requests)

    request_ids = [
        _request_resync(dagster, a, SLOW),
        _request_resync(dagster, a, FAST),
        _request_resync(dagster, b, SLOW),
    ]
    dagster.wait_for(
        "the request_resync runs",
        _finished(dagster, lambda: dagster.runs(runIds=request_ids), len(request_ids)),
        RESYNC_TIMEOUT,
    )
    requested = {r.run_id: r for r in dagster.runs(runIds=request_ids)}

    def resyncs() -> list[Run]:
        return dagster.runs(tags=[{"key": SYNC_MODE_TAG, "value": "resync"}])

    dagster.wait_for("the three resync runs", _finished(dagster, resyncs, 3), RESYNC_TIMEOUT)
    runs = resyncs()
    by_workspace: dict[str, list[Run]] = {}
    for run in runs:
        assert run.tags[RESYNC_REQUEST_TAG], run
        assert run.start is not None and run.end is not None, run
        by_workspace.setdefault(run.tags[RESYNC_WORKSPACE_TAG], []).append(run)
    timeline = "\n".join(str(r) for r in sorted(runs, key=lambda r: r.start or 0))
    assert sorted(by_workspace) == sorted([a.name, b.name]), timeline
    first, second = sorted(by_workspace[a.name], key=lambda r: r.start or 0)
    [other] = by_workspace[b.name]
    assert {first.tags[PARTITION_TAG], second.tags[PARTITION_TAG]} == {SLOW, FAST}, timeline
    assert other.tags[PARTITION_TAG] == SLOW, timeline
    assert {first.job, second.job} == {
        sync_job_name(a.scope, "loyalty_function"),
        sync_job_name(a.scope, "braze"),
    }
    assert other.job == sync_job_name(b.scope, "loyalty_function")
    assert first.start and first.end and second.start and other.start  # for the type checker

    # A: the second request was waiting while the first resync ran, and started only after it ended.
    assert max(requested[i].end or 0 for i in request_ids[:2]) < first.end, timeline
    assert second.start >= first.end, f"A's resyncs overlapped:\n{timeline}"
    # B: not held back by A's queue; it overlapped A's first resync or at least started before A's second.
    assert other.start < first.end or other.start < second.start, f"B waited for A:\n{timeline}"

    # The resyncs sent: every member of the slow audience to each workspace's function (one track call per
    # identifier variant, so at least one per member; the same data in both), the fast one to Braze.
    calls = {w.name: w.calls_log.read_text().split() if w.calls_log.exists() else [] for w in (a, b)}
    assert len(calls[a.name]) >= slow_size and set(calls[a.name]) == {"track"}, calls
    assert len(calls[b.name]) == len(calls[a.name]), calls
    assert len(braze.requests) > braze_before
    print(f"resync timeline ({len(calls[a.name])} function calls each):\n{timeline}")
