"""Runs are bounded: a whole answer within a request's timeout, a run deadline, and a breaker for dead
destinations; what is left waits for the next run and the report says why."""

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from activation_pipeline.delivery.engine import deliver
from activation_pipeline.destinations.base import Outcome
from activation_pipeline.destinations.http import ClientOptions, HttpSender, RetryPolicy
from activation_pipeline.destinations.registry import build_client
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline.state.store import StateStore
from activation_pipeline_tests.test_delivery.workload import webhook_destination, workload

ONCE = ClientOptions(sleep=lambda _s: None, retry=RetryPolicy(max_attempts=1))


class _Trickle(BaseHTTPRequestHandler):
    """Answers 200 at once, then its body one byte a second: each read is quick, the whole never ends."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(100):
            try:
                self.wfile.write(b" ")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(1)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def trickle_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _refused_url() -> str:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_a_trickling_answer_is_cut_at_the_request_timeout(trickle_url: str) -> None:
    sender = HttpSender(trickle_url, timeout=2, retry=RetryPolicy(max_attempts=1))
    started = time.monotonic()
    result = sender.post_json("", {"a": 1})
    assert time.monotonic() - started < 5
    assert result.verdict is Outcome.RETRY and result.reason.startswith("no complete answer within 2 s")


def test_a_dead_destination_opens_the_breaker(store: StateStore) -> None:
    client = build_client(webhook_destination(_refused_url()), ONCE)
    report = deliver(
        store, client, destination_id="hook", planned=workload(5), batch_size=1, breaker_batches=3
    )
    assert (report.stopped, report.batches, report.sent, report.deferred) == ("circuit_breaker", 3, 0, 10)
    assert report.metadata()["stopped_early"] == "circuit_breaker"
    with WebhookSandbox() as sandbox:  # the destination is back: the next run sends everything
        again = deliver(
            store, build_client(webhook_destination(sandbox.hook_url), ONCE), destination_id="hook"
        )
    assert (again.stopped, again.sent) == ("", 10)


def test_the_run_deadline_leaves_the_rest_for_the_next_run(store: StateStore) -> None:
    with WebhookSandbox() as sandbox:
        client = build_client(webhook_destination(sandbox.hook_url), ONCE)
        report = deliver(store, client, destination_id="hook", planned=workload(3), max_run_seconds=0)
        assert (report.stopped, report.sent, report.deferred) == ("deadline", 0, 6)
        assert sandbox.messages() == []
