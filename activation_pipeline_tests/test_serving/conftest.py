"""Fixtures of the Profile API tests: a small evaluated workspace, on DuckDB or PostgreSQL, served over real HTTP."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.config import Workspace
from activation_pipeline_tests.test_compute.conftest import PG_URL, Messages, at, drop_schemas, make_workspace

TOKEN = "tok-" + uuid.uuid4().hex
TOKEN_ENV = "PROFILE_API_TEST_TOKEN"
SPACE = "spa_serving_test"
AS_OF = "2026-10-20T00:00"

WORKSPACE_YAML = f"""
workspace: serving-test
space_id: {SPACE}
sources:
  events: {{path: events/}}
identity:
  identifiers:
    user_id: {{limit: 1}}
    email: {{limit: 3}}
    phone: {{limit: 2}}
    anonymous_id: {{}}
normalisation: {{default_region: US}}
traits:
  custom: [first_name, plan]
  account: [name]
  computed:
    - {{key: orders_count, type: counter, event: Order Completed}}
    - {{key: revenue_total, type: aggregation, function: sum, event: Order Completed, property: revenue}}
audiences:
  - key: big_spender
    where: {{trait: revenue_total, op: ">", value: 100}}
  - key: browsers
    where: {{event: Product Viewed, within: 30d}}
"""


SERVING_YAML = f"""
serving:
  tokens: [{{name: tests, token: {{env: {TOKEN_ENV}}}}}]
  requests_per_second: 1000
  events_days: 30
"""


def jane_history(messages: Messages) -> None:
    """Jane browses on two devices, signs up on one, logs in on the other (merging the two profiles), buys and
    joins an account; Bob buys once and joins the same account."""
    messages.track("2026-10-01T08:00", "Product Viewed", anon="anon-old", sku="B2")
    messages.track("2026-10-01T09:00", "Product Viewed", anon="anon-jane", sku="A1")
    messages.identify("2026-10-01T09:30", anon="anon-jane", email=" Jane.Doe@Example.COM ")
    messages.identify(
        "2026-10-02T10:00", user="u-jane", email="jane.doe@example.com", phone="+1 201-555-0123",
        first_name="Jane", plan="pro",
    )  # fmt: skip
    messages.identify("2026-10-02T10:05", user="u-jane", anon="anon-old")
    for day, revenue in (("03", 80), ("05", 45), ("12", 10)):
        messages.track(f"2026-10-{day}T12:00", "Order Completed", user="u-jane", revenue=revenue)
    messages.group("2026-10-04T08:00", "u-jane", "acct-1", name="Acme")
    messages.identify("2026-10-06T08:00", user="u-bob", email="bob@example.com", first_name="Bob")
    messages.track("2026-10-06T08:10", "Order Completed", user="u-bob", revenue=20)
    messages.group("2026-10-06T08:20", "u-bob", "acct-1")


@dataclass
class Served:
    """A running Profile API over an evaluated workspace."""

    base: str
    workspace: Workspace
    pipeline: ComputePipeline
    messages: Messages
    server: uvicorn.Server

    def get(self, path: str, token: str | None = TOKEN, **params: Any) -> requests.Response:
        """GET a path under the space, authenticated with `token` as Segment clients do."""
        auth = (token, "") if token is not None else None
        return requests.get(f"{self.base}/v1/spaces/{SPACE}/{path}", params=params, auth=auth, timeout=10)

    def user(self, identifier: str, resource: str, **params: Any) -> requests.Response:
        """GET a user profile's resource."""
        return self.get(f"collections/users/profiles/{identifier}/{resource}", **params)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(server: uvicorn.Server) -> threading.Thread:
    """Run a uvicorn server in a thread and wait until it accepts connections."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Profile API did not start")
        time.sleep(0.02)
    return thread


def stop_server(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Ask the server to exit and wait for it."""
    server.should_exit = True
    thread.join(timeout=20)


@pytest.fixture(scope="module")
def token_env() -> Iterator[str]:
    """The test access token, set in its environment variable for the module's servers."""
    os.environ[TOKEN_ENV] = TOKEN
    yield TOKEN
    os.environ.pop(TOKEN_ENV, None)


def evaluated(
    root: Path, engine: str, serving_yaml: str = SERVING_YAML
) -> tuple[Workspace, ComputePipeline, Messages, str | None]:
    """Jane's history landed and evaluated as of AS_OF under `root`, on DuckDB or a new PostgreSQL schema."""
    schema = None
    yaml = WORKSPACE_YAML + serving_yaml
    if engine == "postgres":
        schema = f"t_{uuid.uuid4().hex[:10]}"
        yaml += f"compute: {{engine: postgres, url: '{PG_URL}', schema: {schema}}}\n"
    workspace = make_workspace(root, yaml, base="")
    messages = Messages(root)
    jane_history(messages)
    messages.write()
    pipeline = ComputePipeline(workspace, ComputeEngine.for_workspace(workspace))
    pipeline.land()
    pipeline.evaluate(at(AS_OF))
    return workspace, pipeline, messages, schema


@contextmanager
def running(workspace: Workspace) -> Iterator[uvicorn.Server]:
    """The workspace's Profile API on a real uvicorn server on a free port of 127.0.0.1, stopped after."""
    from activation_pipeline.serving.server import limits_file, server_for

    with limits_file() as limits:
        server = server_for(workspace, limits, "127.0.0.1", free_port())
        thread = start_server(server)
        try:
            yield server
        finally:
            stop_server(server, thread)


@contextmanager
def serving(root: Path, engine: str, serving_yaml: str = SERVING_YAML) -> Iterator[Served]:
    """An evaluated workspace served by a real uvicorn server on 127.0.0.1; everything removed after."""
    workspace, pipeline, messages, schema = evaluated(root, engine, serving_yaml)
    try:
        with running(workspace) as server:
            yield Served(f"http://127.0.0.1:{server.config.port}", workspace, pipeline, messages, server)
    finally:
        pipeline.close()
        if schema is not None:
            drop_schemas(PG_URL, schema)


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, token_env: str
) -> Iterator[Served]:
    """Jane's history evaluated as of 2026-10-20 and served on 127.0.0.1, on DuckDB or PostgreSQL (read only)."""
    with serving(tmp_path_factory.mktemp("served"), request.param) as running:
        yield running


def basic(token: str) -> str:
    """An Authorization header value for `token` with an empty password."""
    return "Basic " + base64.b64encode(f"{token}:".encode()).decode()
