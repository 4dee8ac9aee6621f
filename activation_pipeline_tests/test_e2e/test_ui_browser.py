"""The README's UI command end to end in a real browser: `activation-pipeline ui --sandbox`, driven by Playwright
with Debian's chromium (headless).

A copy of the sample (small generated events, evaluated headless in the sandbox first so the syncs have results
to read) is served by the command exactly as a user starts it, with a fresh DAGSTER_HOME. The browser opens the
lineage and expands the workspace into its stages, then requests a resync from the Launchpad, picking the
connection from the form's choices, and sees the request and the resync it leads to succeed; the fake Braze
server received the resync, and every run carries the sandbox tag.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from playwright.sync_api import Page, sync_playwright

from activation_pipeline.cli import main
from activation_pipeline.orchestration.resources import SANDBOX_TAG
from activation_pipeline.orchestration.sensors import SENSOR_INTERVAL_ENV
from activation_pipeline.orchestration.ui import WIRING_FILE
from activation_pipeline.sandbox.workspace import SANDBOX_STATE_DIR
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
END = datetime(2026, 11, 1, tzinfo=UTC)
SPEC = GeneratorSpec(profiles=80, events=2000, seed=11, end=END, days=40)  # predictive models need 30+ days
CONNECTION = "audience.cart_abandoners.braze"
REQUEST_JOB = "acme_shop__request_resync"
TIMEOUT_MS = 180_000  # a run starts a process of its own: slow on a shared machine

RUNS = """
query ($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    ... on Runs { results { runId jobName status tags { key value } } }
  }
}"""
FAILURES = """
query ($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection {
      events { ... on ExecutionStepFailureEvent { error { message cause { message cause { message } } } } }
    }
  }
}"""
LOADED = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


@dataclass
class Ui:
    """The running `activation-pipeline ui --sandbox`: where it serves, its output, the sample copy it serves."""

    url: str
    log: Path
    workspace: Path
    process: subprocess.Popen[bytes]

    def tail(self) -> str:
        """The end of the command's output, for failure messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-60:])

    def query(self, text: str, **variables: Any) -> dict[str, Any]:
        """A GraphQL query against the UI's server."""
        response = requests.post(
            f"{self.url}/graphql", json={"query": text, "variables": variables}, timeout=30
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        assert not body.get("errors"), body
        return dict(body["data"])

    def runs(self, **run_filter: Any) -> list[dict[str, Any]]:
        """The runs matching a `RunsFilter`."""
        return list(self.query(RUNS, filter=run_filter)["runsOrError"]["results"])

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
        """Poll until `check` holds; fail with the command's output when it stops or time runs out."""
        deadline = time.monotonic() + timeout
        while not check():
            assert self.process.poll() is None, f"the ui command exited waiting for {what}:\n{self.tail()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.tail()}"
            time.sleep(0.5)

    def failure(self, run_id: str) -> str:
        """Why a run failed: the messages of its failed steps' errors, innermost last."""
        events = self.query(FAILURES, runId=run_id)["logsForRun"]["events"]
        messages = []
        for event in events:
            error = event.get("error")
            while error:
                messages.append(error["message"][:500])
                error = error.get("cause")
        return "\n".join(messages) or self.tail()

    def fake_requests(self, destination: str) -> int:
        """Requests the destination's fake server (started by the ui command) has received."""
        wiring = json.loads((self.workspace.parent / SANDBOX_STATE_DIR / WIRING_FILE).read_text())
        url = wiring["base_urls"][f"acme-shop/{destination}"]
        return len(requests.get(f"{url}/__sandbox/requests", timeout=10).json())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C as in a terminal (the command and dg dev share a process group); SIGKILL what is left."""
    with suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=40)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    """A sample copy evaluated in the sandbox, served by `activation-pipeline ui --sandbox`; stopped afterwards."""
    assert CHROMIUM.exists(), (
        "Debian's chromium is missing: scripts/setup.sh installs it (apt-get install chromium)"
    )
    root = tmp_path_factory.mktemp("ui")
    sample = root / "sample"
    shutil.copytree(
        REPO / "data" / "sample", sample, ignore=shutil.ignore_patterns("events", "state", ".dagster_home")
    )
    write_events(SPEC, sample / "events")
    workspace = sample / "workspace.yml"
    assert main(["run", str(workspace), "--sandbox", "--no-sync", "--as-of", END.isoformat()]) == 0
    port = _free_port()
    log = root / "ui.log"
    env = {**os.environ, "DAGSTER_HOME": str(root / "home"), SENSOR_INTERVAL_ENV: "1"}
    env.pop("ACTIVATION_WORKSPACE", None)
    command = [sys.executable, "-m", "activation_pipeline.cli", "ui", str(workspace), "--sandbox"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=env, cwd=root, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    running = Ui(f"http://127.0.0.1:{port}", log, workspace, process)
    try:

        def loaded() -> bool:
            try:
                entries = running.query(LOADED)["workspaceOrError"]["locationEntries"]
            except requests.RequestException:
                return False
            return [(e["name"], e["loadStatus"]) for e in entries] == [("activation_pipeline", "LOADED")]

        running.wait_for("the code location to load", loaded, timeout=300)  # generous: CI machines are shared
        yield running
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def page(ui: Ui) -> Iterator[Page]:
    """A headless chromium page; the UI's one-time community dialog is skipped whenever it shows."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        tab = browser.new_page(viewport={"width": 1600, "height": 1000})
        tab.set_default_timeout(TIMEOUT_MS)
        tab.add_locator_handler(
            tab.get_by_text("Join the Dagster community"),
            lambda: tab.get_by_role("button", name="Skip").click(),
        )
        yield tab
        browser.close()


def test_ui_instance_holds_the_resync_limit(ui: Ui) -> None:
    """The command wrote the resync limit and telemetry off into the fresh DAGSTER_HOME's dagster.yaml."""
    settings = yaml.safe_load((ui.log.parent / "home" / "dagster.yaml").read_text())
    [limit] = settings["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limit == {
        "key": "activation/resync_workspace",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    }
    assert settings["telemetry"] == {"enabled": False}
    output = ui.log.read_text(errors="replace")
    assert "Telemetry" not in output and "Warning" not in output, (
        ui.tail()
    )  # no opt-out notice, no superseded command


def test_lineage_shows_the_workspace_and_its_stages(ui: Ui, page: Page) -> None:
    """Lineage: the workspace is one box of assets; expanded, its stages from config to sync."""
    page.goto(f"{ui.url}/asset-groups")
    box = page.get_by_text(re.compile(r"^\d+ assets")).first
    box.wait_for()
    box.dblclick()
    for stage in ("config", "ingest", "identity", "traits", "audiences", "sync", "serving"):
        page.get_by_text(stage, exact=True).first.wait_for()


def test_resync_requested_from_the_launchpad_completes(ui: Ui, page: Page) -> None:
    """Launchpad: pick the connection from the form's choices, launch; the request and the resync succeed."""
    braze_before = ui.fake_requests("braze")
    page.goto(f"{ui.url}/locations/activation_pipeline/jobs/{REQUEST_JOB}/playground")
    editor = page.locator(".CodeMirror").first
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(
        "ops:\n  acme_shop__record_resync_request:\n    config:\n      reason: browser test\n      connection: "
    )
    page.keyboard.press("Control+Space")
    choices = page.locator(".CodeMirror-hints")
    offered = choices.inner_text().split()
    assert CONNECTION in offered and "audience.high_value_recent.meta_ads" in offered, offered
    choices.get_by_text(CONNECTION, exact=True).click()
    page.get_by_text("No errors").wait_for()
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url("**/runs/**")
    request_run = page.url.rstrip("/").split("/runs/")[1].split("?")[0]
    page.get_by_text("Success", exact=True).first.wait_for()

    def resyncs() -> list[dict[str, Any]]:
        return ui.runs(tags=[{"key": "activation/sync_mode", "value": "resync"}])

    ui.wait_for(
        "the resync run to finish",
        lambda: any(r["status"] in ("SUCCESS", "FAILURE") for r in resyncs()),
        timeout=TIMEOUT_MS / 1000,
    )
    [resync] = resyncs()
    assert resync["status"] == "SUCCESS", ui.failure(resync["runId"])
    tags = {t["key"]: t["value"] for t in resync["tags"]}
    assert tags["dagster/partition"] == CONNECTION and tags[SANDBOX_TAG] == "true"
    page.goto(f"{ui.url}/runs/{resync['runId']}")
    page.get_by_text("Success", exact=True).first.wait_for()
    page.get_by_text(f"resync of {CONNECTION}").first.wait_for()
    assert ui.fake_requests("braze") > braze_before
    [request] = ui.runs(runIds=[request_run])
    assert {t["key"]: t["value"] for t in request["tags"]}[SANDBOX_TAG] == "true"
