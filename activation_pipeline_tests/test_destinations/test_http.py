"""The shared HTTP sender over real HTTP: which answers are retried, Retry-After, budgets, body hints."""

import email.utils
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from activation_pipeline.destinations.base import Outcome
from activation_pipeline.destinations.http import (
    HttpSender,
    RetryPolicy,
    Verdict,
    default_classify,
    is_retryable_status,
    parse_retry_after,
)
from activation_pipeline.sandbox.base import SandboxServer


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer() as sandbox:
        yield sandbox


def sender(server: SandboxServer, waits: list[float], **policy: Any) -> HttpSender:
    return HttpSender(server.url, sleep=waits.append, retry=RetryPolicy(**policy))


def statuses(server: SandboxServer) -> list[int]:
    return [r.status for r in server.requests]


def test_429_with_retry_after_is_honoured(server: SandboxServer) -> None:
    server.throttle_next(2, retry_after=3)
    waits: list[float] = []
    result = sender(server, waits).post_json("/x", {"a": 1})
    assert result.verdict is Outcome.ACKNOWLEDGED
    assert statuses(server) == [429, 429, 200]
    assert len(waits) == 2 and all(3 <= w <= 3.5 for w in waits)


def test_retry_after_http_date(server: SandboxServer) -> None:
    later = email.utils.formatdate(time.time() + 5, usegmt=True)
    server.throttle_next(1, retry_after=later)
    waits: list[float] = []
    assert sender(server, waits).post_json("/x", {}).verdict is Outcome.ACKNOWLEDGED
    assert 3 <= waits[0] <= 6


def test_500_is_retried_with_backoff(server: SandboxServer) -> None:
    server.fail_once(500)
    server.fail_once(503)
    waits: list[float] = []
    result = sender(server, waits, base_delay=0.5).post_json("/x", {})
    assert result.verdict is Outcome.ACKNOWLEDGED and result.retries == 2
    assert statuses(server) == [500, 503, 200]
    assert 0 <= waits[0] <= 0.5 and 0 <= waits[1] <= 1.0  # full jitter under a doubling ceiling


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 501])
def test_permanent_failures_are_not_retried(server: SandboxServer, status: int) -> None:
    server.fail_next(1, status, body={"error": "no"})
    waits: list[float] = []
    result = sender(server, waits).post_json("/x", {})
    assert result.verdict is Outcome.FAILED
    assert f"HTTP {status}" in result.reason
    assert statuses(server) == [status] and waits == []


@pytest.mark.parametrize("status", [408, 423, 429, 500, 502, 503, 504, 599])
def test_retryable_statuses(status: int) -> None:
    assert is_retryable_status(status)


def test_attempts_are_bounded(server: SandboxServer) -> None:
    server.fail_next(100, 503)
    waits: list[float] = []
    result = sender(server, waits, max_attempts=4).post_json("/x", {})
    assert result.verdict is Outcome.RETRY and result.attempts == 4
    assert "gave up after 4 attempts" in result.reason
    assert len(server.requests) == 4


def test_total_wait_is_bounded(server: SandboxServer) -> None:
    server.throttle_next(100, retry_after=30)
    waits: list[float] = []
    result = sender(server, waits, max_total_wait=60).post_json("/x", {})
    assert result.verdict is Outcome.RETRY
    assert sum(waits) <= 60 and len(server.requests) == 2


def test_connection_error_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []
    result = HttpSender(
        f"http://127.0.0.1:{port}", sleep=waits.append, retry=RetryPolicy(max_attempts=3)
    ).post_json("/x", {})
    assert result.verdict is Outcome.RETRY and result.response is None
    assert "ConnectionError" in result.reason and len(waits) == 2


def test_throttle_in_a_200_body_via_classifier(server: SandboxServer) -> None:
    """A Marketo-style 606 in a 200 body is retried with the classifier's hint."""
    server.fail_next(1, 200, body={"success": False, "errors": [{"code": "606"}]})

    def marketo(response: requests.Response) -> Verdict:
        body = response.json()
        if body.get("success") is False and body["errors"][0]["code"] in ("606", "615"):
            return Verdict(Outcome.RETRY, delay=20.0, reason="Marketo 606")
        return default_classify(response)

    waits: list[float] = []
    result = HttpSender(server.url, sleep=waits.append, classify=marketo).post_json("/x", {})
    assert result.verdict is Outcome.ACKNOWLEDGED and 20 <= waits[0] <= 20.5


def test_rate_limiter_takes_a_token_per_attempt(server: SandboxServer) -> None:
    class Counter:
        taken = 0

        def acquire(self) -> None:
            Counter.taken += 1

    server.fail_once(500)
    HttpSender(server.url, rate_limiter=Counter(), sleep=lambda _s: None).post_json("/x", {})
    assert Counter.taken == 2


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(email.utils.formatdate(0, usegmt=True)) == 0.0


def test_requests_carry_what_the_session_and_the_call_say(server: SandboxServer) -> None:
    """Requests reuse a prepared request per (method, URL); changes to the session's headers, per-call
    headers, bodies of every kind and query parameters still go out as written."""
    http = HttpSender(server.url, headers={"Authorization": "Bearer one"})
    http.post_json("/x", {"n": 1}, headers={"X-Signature": "a"})
    http.session.headers["Authorization"] = "Bearer two"  # e.g. a token refreshed by a client
    http.post_json("/x", {"n": 2})
    http.request("PUT", "/x", data=b"raw bytes", headers={"Content-Type": "text/plain"})
    http.request("POST", "/x", data={"form": "value"})
    http.request("GET", "/x", params={"q": "a b"})
    sent = server.requests
    assert [r.header("authorization") for r in sent] == ["Bearer one"] + ["Bearer two"] * 4
    assert [r.header("x-signature") for r in sent] == ["a", None, None, None, None]
    assert [r.json() for r in sent[:2]] == [{"n": 1}, {"n": 2}]
    assert sent[0].header("content-type") == "application/json"
    assert (sent[2].method, sent[2].body, sent[2].header("content-type")) == (
        "PUT",
        b"raw bytes",
        "text/plain",
    )
    assert (sent[3].body, sent[3].header("content-type")) == (
        b"form=value",
        "application/x-www-form-urlencoded",
    )
    assert (sent[4].method, sent[4].query) == ("GET", {"q": ["a b"]})
