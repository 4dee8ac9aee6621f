"""A small HTTP sender every destination client uses: base URL, headers, rate limiting and retries.

Retries are hand-written rather than tenacity/urllib3 `Retry` because each attempt must take a rate-limit
token, honour `Retry-After` (delta-seconds or HTTP-date) or a delay hinted in the body, classify bodies
(throttling inside a 200 or a 4xx) and stop within a total wait budget; the code is short and testable
with an injected `sleep`.

Nothing here logs URLs, headers or bodies: URLs may carry tokens, bodies carry personal data.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import requests
import urllib3
from requests.adapters import HTTPAdapter

from activation_pipeline.destinations.base import ConnectionMemory, Outcome

RETRYABLE_4XX = frozenset({408, 423, 429})


class TokenSource(Protocol):
    """A rate limiter: `acquire` blocks until one request may be sent."""

    def acquire(self) -> None:
        """Block until one more request is allowed."""
        ...


@dataclass(frozen=True)
class Verdict:
    """How one HTTP answer is judged: acknowledged, retry (transient) or failed (permanent), with a wait hint."""

    kind: Outcome
    delay: float | None = None
    """Seconds the server asked us to wait before the next attempt (Retry-After, retryDelay, ...)."""
    reason: str = ""


Classifier = Callable[[requests.Response], Verdict]


def is_retryable_status(status: int) -> bool:
    """408, 423, 429 and every 5xx except 501 are transient (action-destinations' rule)."""
    return status in RETRYABLE_4XX or (500 <= status <= 599 and status != 501)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP-date); None when absent or invalid."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    return max(0.0, (when - current).total_seconds())


def short_body(response: requests.Response, limit: int = 300) -> str:
    """The start of a response body for a failure reason (stored in the ledger, never logged)."""
    try:
        text = response.text
    except (UnicodeDecodeError, LookupError):
        return "<binary body>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def default_classify(response: requests.Response) -> Verdict:
    """2xx ok; 408/423/429/5xx-except-501 retry (honouring Retry-After); any other status fails."""
    status = response.status_code
    if 200 <= status < 300:
        return Verdict(Outcome.ACKNOWLEDGED)
    if is_retryable_status(status):
        return Verdict(
            Outcome.RETRY, parse_retry_after(response.headers.get("Retry-After")), reason=f"HTTP {status}"
        )
    return Verdict(Outcome.FAILED, reason=f"HTTP {status}: {short_body(response)}")


def classify_with_reset(response: requests.Response) -> Verdict:
    """Default classification; a 429 without Retry-After waits until `X-RateLimit-Reset` (Unix seconds), as
    Braze, Intercom and SendGrid announce the end of their window."""
    verdict = default_classify(response)
    if verdict.kind is Outcome.RETRY and verdict.delay is None and response.status_code == 429:
        reset = response.headers.get("X-RateLimit-Reset", "")
        if reset.isdigit():
            return Verdict(Outcome.RETRY, max(0.0, int(reset) - time.time()), verdict.reason)
    return verdict


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter; a server's wait hint replaces the backoff."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total_wait: float = 120.0
    """Give up (outcome "retry": the next run sends again) rather than wait longer than this in total."""

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**(retry_number-1))]."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, retry_number - 1)))
        return rng.uniform(0.0, ceiling)

    def wait_for(self, retry_number: int, hint: float | None, rng: random.Random) -> float:
        """The wait before retry `retry_number` (1-based): at least the hint, plus a little jitter."""
        if hint is not None:
            return hint + rng.uniform(0.0, min(self.base_delay, 1.0))
        return self.backoff(retry_number, rng)


@dataclass(frozen=True)
class HttpResult:
    """The end of one logical request after retries: verdict, last response (if any), attempts, reason."""

    verdict: Outcome
    """Acknowledged; failed (permanent); retry (still transient when attempts or the wait budget ran out)."""
    response: requests.Response | None
    attempts: int
    retries: int
    reason: str = ""

    @property
    def status(self) -> int | None:
        """HTTP status of the last answer, None after a connection error or timeout."""
        return None if self.response is None else self.response.status_code

    def json(self) -> Any:
        """The last answer's JSON body, or None when there is none or it is not JSON."""
        if self.response is None or not self.response.content:
            return None
        try:
            return self.response.json()
        except ValueError:
            return None


class _DeadlineExceededError(Exception):
    """The answer did not arrive whole within the request's deadline."""


class HttpSender:
    """Sends requests to one base URL: a rate-limit token per attempt, retries per `RetryPolicy`."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        rate_limiter: TokenSource | None = None,
        retry: RetryPolicy | None = None,
        classify: Classifier = default_classify,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        rng: random.Random | None = None,
        pool_size: int = 16,
    ) -> None:
        self.raw_base_url = base_url
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.rate_limiter = rate_limiter
        self.retry = retry or RetryPolicy()
        self.classify = classify
        self.sleep = sleep
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._owns_session = session is None
        self.session = session or requests.Session()
        if self._owns_session:
            adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
            # Read proxy and CA-bundle settings from the environment once, not on every request (that
            # lookup, .netrc included, is a third of requests' per-call cost).
            environment = self.session.merge_environment_settings(self.base_url, {}, None, None, None)
            self.session.proxies.update(environment.get("proxies") or {})
            if isinstance(environment.get("verify"), str):
                self.session.verify = environment["verify"]
            self.session.trust_env = False
        self.session.headers.update({"User-Agent": "activation-pipeline", **dict(headers or {})})
        self._prepared: dict[tuple[Any, ...], requests.PreparedRequest] = {}

    def url(self, path: str) -> str:
        """The absolute URL of `path` (absolute URLs pass through)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.raw_base_url

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | str | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        files: Mapping[str, Any] | None = None,
        classify: Classifier | None = None,
    ) -> HttpResult:
        """Send until ok, a permanent failure, or the attempt / wait budget is spent; never raises on HTTP."""
        judge = classify or self.classify
        policy = self.retry
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            response: requests.Response | None = None
            try:
                response = self._within_deadline(
                    method, path, json=json, data=data, params=params, headers=headers, files=files
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as error:
                verdict = Verdict(
                    Outcome.RETRY, reason=f"{type(error).__name__} (connection error or timeout)"
                )
            except _DeadlineExceededError:
                verdict = Verdict(Outcome.RETRY, reason=f"no complete answer within {self.timeout:g} s")
            else:
                verdict = judge(response)
            if verdict.kind is not Outcome.RETRY:
                return HttpResult(verdict.kind, response, attempt, attempt - 1, verdict.reason)
            wait = policy.wait_for(attempt, verdict.delay, self.rng)
            if attempt >= policy.max_attempts or waited + wait > policy.max_total_wait:
                reason = verdict.reason or "transient failure"
                return HttpResult(
                    Outcome.RETRY,
                    response,
                    attempt,
                    attempt - 1,
                    f"{reason}; gave up after {attempt} attempts",
                )
            if response is not None:
                response.close()
            waited += wait
            self.sleep(wait)

    def _within_deadline(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request whose whole answer must arrive within `timeout` (not only each read: a server sending a
        byte every few seconds would otherwise hold the run for ever)."""
        deadline = time.monotonic() + self.timeout
        headers = kwargs.pop("headers")
        if kwargs["params"] is None and kwargs["files"] is None and not self.session.cookies:
            response = self._send_prepared(method, path, headers, kwargs["json"], kwargs["data"])
        else:
            response = self.session.request(
                method,
                self.url(path),
                headers=dict(headers) if headers else None,
                timeout=self.timeout,
                stream=True,
                **kwargs,
            )
        body = bytearray()
        try:
            # read1 returns what has arrived (iter_content would wait to fill each 64 KB chunk).
            while chunk := response.raw.read1(64 * 1024, decode_content=True):
                body += chunk
                if time.monotonic() > deadline:
                    raise _DeadlineExceededError
        except (_DeadlineExceededError, urllib3.exceptions.HTTPError) as error:
            response.close()
            if isinstance(error, urllib3.exceptions.ReadTimeoutError):
                raise requests.Timeout(str(error)) from error
            if isinstance(error, urllib3.exceptions.HTTPError):  # cut off, or a body that does not decode
                raise requests.ConnectionError(str(error)) from error
            raise
        response._content = bytes(body)  # read whole: .json() and .text work as without streaming
        return response

    def _send_prepared(
        self, method: str, path: str, headers: Mapping[str, str] | None, json: Any, data: Any
    ) -> requests.Response:
        """Send through a copy of the (method, URL)'s request prepared once with the session's settings.

        What `Session.request` would do, without merging the session's headers, auth and hooks again for every
        request (about half of requests' Python cost per call, which one-request-per-record destinations pay
        hundreds of times a second). The session's headers and auth are part of the key, so a change to them
        prepares anew; used while the session holds no cookies (they are merged per request)."""
        key = (method, path, *self.session.headers.items(), id(self.session.auth))
        template = self._prepared.get(key)
        if template is None:
            template = self._prepared[key] = self.session.prepare_request(
                requests.Request(method, self.url(path))
            )
        prepared = template.copy()
        if headers:
            prepared.headers.update(headers)
        prepared.prepare_body(data, None, json)
        return self.session.send(
            prepared,
            timeout=self.timeout,
            stream=True,
            verify=self.session.verify,
            cert=self.session.cert,
            proxies=self.session.proxies,
            allow_redirects=True,
        )

    def post_json(self, path: str, body: Any, **kwargs: Any) -> HttpResult:
        """POST `body` as JSON."""
        return self.request("POST", path, json=body, **kwargs)

    def close(self) -> None:
        """Close the session if this sender created it."""
        if self._owns_session:
            self.session.close()


@dataclass(frozen=True)
class ClientOptions:
    """What the delivery engine hands every destination client: limiter, retry policy, sleep, paths."""

    rate_limiter: TokenSource | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    timeout: float = 30.0
    base_dir: Path | None = None
    """Directory relative paths in settings (function files) are resolved against."""
    session: requests.Session | None = None
    pool_size: int = 16
    default_region: str = "US"
    """The workspace's `normalisation.default_region`: country of phone numbers written without one."""
    memory: ConnectionMemory | None = None
    """Where clients keep per-connection platform ids between runs (None: only for this client's life)."""

    def sender(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        classify: Classifier = default_classify,
        timeout: float | None = None,
    ) -> HttpSender:
        """An `HttpSender` wired with these options."""
        return HttpSender(
            base_url,
            headers=headers,
            timeout=self.timeout if timeout is None else timeout,
            rate_limiter=self.rate_limiter,
            retry=self.retry,
            classify=classify,
            sleep=self.sleep,
            session=self.session,
            pool_size=self.pool_size,
        )
