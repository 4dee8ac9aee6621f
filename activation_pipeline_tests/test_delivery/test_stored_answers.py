"""A destination that echoes the request's headers back: the ledger keeps its answer without the secrets."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from activation_pipeline.delivery.engine import deliver
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.registry import build_client
from activation_pipeline.state.redaction import MAX_STORED_BYTES, REDACTED, redact_text, stored_answer
from activation_pipeline.state.schema import delivery_ledger
from activation_pipeline.state.store import StateStore
from activation_pipeline_tests.test_delivery.workload import webhook_destination, workload

TOKEN = "tok-Zq81xPq0-secret"


class _Echo(BaseHTTPRequestHandler):
    """Answers 401 with the request's headers in the body, as some platforms' error pages do."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"error": "unauthorized", "request_headers": dict(self.headers)}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_an_echoed_token_is_not_stored(
    store: StateStore, echo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", f"Bearer {TOKEN}")
    destination = webhook_destination(echo_url, headers={"Authorization": {"env": "HOOK_TOKEN"}})
    client = build_client(
        destination, ClientOptions(sleep=lambda _s: None, retry=RetryPolicy(max_attempts=1))
    )
    report = deliver(store, client, destination_id="hook", planned=workload(2))
    assert report.failed == 4
    with store.read() as connection:
        rows = connection.execute(sa.select(delivery_ledger.c.reason, delivery_ledger.c.response)).all()
    stored = json.dumps([[r.reason, r.response] for r in rows])
    assert TOKEN not in stored
    assert "unauthorized" in stored  # the answer itself is kept


def test_credentials_after_their_names_and_huge_answers() -> None:
    text = (
        'Authorization: Basic dXNlcjpwYXNz, "api_key": "k_live_123456", access_token=EAAB123456 plain words'
    )
    assert redact_text(text) == (
        f'Authorization: {REDACTED}, "api_key": "{REDACTED}", access_token={REDACTED} plain words'
    )
    big = stored_answer({"body": "x" * (2 * MAX_STORED_BYTES)})
    assert big["truncated"] is True and big["bytes"] > 2 * MAX_STORED_BYTES
    assert len(json.dumps(big)) < MAX_STORED_BYTES
