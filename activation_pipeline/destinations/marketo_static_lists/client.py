"""Marketo Static Lists: leads found by the lookup field, then added to / removed from a static list.

REST calls (Adobe Marketo Engage): an OAuth client-credentials token from `POST /identity/oauth/token`
(refetched before it expires and whenever a call answers 601/602), sent as `Authorization: Bearer`;
lead lookup `GET /rest/v1/leads.json?filterType=<field>&filterValues=a,b` with at most 300 values (as
`POST ...?_method=GET` with a form body when the URI would pass 8 KB); list membership
`POST|DELETE /rest/v1/lists/{listId}/leads.json?id=1&id=2` with at most 300 lead ids. Marketo answers
almost everything with HTTP 200 and `success: false` plus error codes: 606 (rate) and 615 (concurrency),
604/608/611/713 are backed off and retried; per-lead statuses (`added`, `removed`, `skipped` with reasons)
become per-record results.

Limits honoured here: 100 calls in any 20 s (`WindowLimiter`, in addition to the engine's rate limiter)
and at most 10 calls in flight from this client. Lookup values are not hashed (Marketo matches on them);
what a record's `sent` keeps is their SHA-256 and the lead ids, not the values.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests

from activation_pipeline.destinations.base import (
    BatchContext,
    BatchResult,
    Operation,
    OutboundRecord,
    Outcome,
    RecordResult,
)
from activation_pipeline.destinations.http import (
    ClientOptions,
    HttpResult,
    HttpSender,
    TokenSource,
    Verdict,
    default_classify,
)
from activation_pipeline.destinations.marketo_static_lists.settings import (
    MarketoConnection,
    MarketoDestination,
)
from activation_pipeline.destinations.normalise import normalise_email, sha256_hex
from activation_pipeline.destinations.normalise.person import text_of
from activation_pipeline.errors import TransientDestinationError

MAX_IDS = 300
MAX_URI = 8_000
TOKEN_CODES = frozenset({"601", "602"})
RETRY_CODES = frozenset({"604", "606", "608", "611", "615", "713", "1016", "1019", "1029"})
BENIGN_SKIPS = {Operation.REMOVE: frozenset({"1015", "1004"})}
"""Skips that still mean the list is as asked (removing a lead that is not in the list)."""
EXPIRY_MARGIN = 60.0


class WindowLimiter:
    """At most `calls` acquisitions in any `window` seconds (Marketo: 100 calls per 20 s)."""

    def __init__(
        self,
        calls: int = 100,
        window: float = 20.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Configure the window; `clock` and `sleep` are injectable for tests."""
        self.calls = calls
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until one more call fits in the window."""
        with self._lock:
            while True:
                now = self.clock()
                while self._times and self._times[0] + self.window <= now:
                    self._times.popleft()
                if len(self._times) < self.calls:
                    self._times.append(now)
                    return
                self.sleep(max(self._times[0] + self.window - now, 0.001))


class _Both:
    """Two token sources in a row (the engine's shared limiter and Marketo's window)."""

    def __init__(self, first: TokenSource, second: TokenSource) -> None:
        self.first = first
        self.second = second

    def acquire(self) -> None:
        """Take a token from both, in order."""
        self.first.acquire()
        self.second.acquire()


def marketo_codes(body: Any) -> set[str]:
    """The error codes of a Marketo answer (`errors[].code`), as strings."""
    if not isinstance(body, dict):
        return set()
    return {str(e.get("code")) for e in body.get("errors") or [] if isinstance(e, dict)}


def _messages(body: Any) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    return "; ".join(
        f"{e.get('code')} {e.get('message', '')}".strip() for e in errors or [] if isinstance(e, dict)
    )


def classify_marketo(response: requests.Response) -> Verdict:
    """Judge a Marketo answer: `success: false` with 606/615/... retries even inside an HTTP 200."""
    if not 200 <= response.status_code < 300:
        return default_classify(response)
    try:
        body = response.json()
    except ValueError:
        return Verdict(Outcome.FAILED, reason="HTTP 200 without a JSON body")
    if isinstance(body, dict) and body.get("success") is False:
        codes = marketo_codes(body)
        if codes & RETRY_CODES:
            return Verdict(Outcome.RETRY, reason=f"Marketo {_messages(body)}")
        return Verdict(Outcome.FAILED, reason=f"Marketo {_messages(body)}")
    return Verdict(Outcome.ACKNOWLEDGED)


@dataclass
class _Item:
    record: OutboundRecord
    lookups: list[str] = field(default_factory=list)
    lead_ids: list[int] = field(default_factory=list)
    outcome: Outcome | None = None
    reason: str = ""
    statuses: dict[int, str] = field(default_factory=dict)


class MarketoClient:
    """`DestinationClient` for marketo_static_lists."""

    max_batch = MAX_IDS

    def __init__(
        self,
        destination: MarketoDestination,
        options: ClientOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        calls_per_window: int = 100,
        window_seconds: float = 20.0,
        max_concurrent: int = 10,
    ) -> None:
        """Resolve the client credentials and prepare the sender (the token is fetched on first use)."""
        opts = options or ClientOptions()
        settings = destination.settings
        where = f"destinations.{destination.id}.settings"
        self.client_id = settings.client_id.resolve(f"{where}.client_id")
        self._client_secret = settings.client_secret.resolve(f"{where}.client_secret")
        self.lookup_field = settings.lookup_field
        sleeper = opts.sleep
        self.window = WindowLimiter(calls_per_window, window_seconds, clock=clock, sleep=sleeper)
        shared = opts.rate_limiter
        base = settings.base_url.rstrip("/").removesuffix("/rest")
        self.sender = HttpSender(
            base,
            timeout=opts.timeout,
            rate_limiter=_Both(shared, self.window) if shared is not None else self.window,
            retry=opts.retry,
            classify=classify_marketo,
            sleep=sleeper,
            session=opts.session,
            pool_size=max(opts.pool_size, max_concurrent),
        )
        self.clock = clock
        self._in_flight = threading.BoundedSemaphore(max_concurrent)
        self._token: str | None = None
        self._expires = 0.0
        self._token_lock = threading.Lock()
        self.token_fetches = 0

    # ------------------------------------------------------------------ auth
    def _access_token(self, refresh: bool = False, stale: str | None = None) -> str:
        with self._token_lock:
            if refresh and self._token is not None and self._token != stale:
                return self._token  # another thread already refreshed it
            if refresh or self._token is None or self.clock() >= self._expires - EXPIRY_MARGIN:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def _fetch_token(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        with self._in_flight:
            result = self.sender.request(
                "POST",
                "identity/oauth/token",
                data=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                classify=default_classify,
            )
        body = result.json()
        if (
            result.verdict is not Outcome.ACKNOWLEDGED
            or not isinstance(body, dict)
            or "access_token" not in body
        ):
            raise TransientDestinationError(
                f"Marketo token request failed: {result.reason or 'no access_token'}"
            )
        self.token_fetches += 1
        self._token = str(body["access_token"])
        self._expires = self.clock() + float(body.get("expires_in", 3600))

    def _call(
        self,
        method: str,
        path: str,
        counts: dict[str, float],
        *,
        params: Mapping[str, Any] | None = None,
        data: str | None = None,
    ) -> HttpResult:
        """One REST call with a valid token; a 601/602 answer refetches the token and tries again."""
        token = self._access_token()
        headers = {"Authorization": f"Bearer {token}"}
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        result: HttpResult | None = None
        for _attempt in range(3):
            with self._in_flight:
                result = self.sender.request(method, path, params=params, data=data, headers=headers)
            counts["http_requests"] += result.attempts
            counts["http_retries"] += result.retries
            if result.verdict is Outcome.FAILED and marketo_codes(result.json()) & TOKEN_CODES:
                counts["token_refreshes"] += 1
                token = self._access_token(refresh=True, stale=token)
                headers["Authorization"] = f"Bearer {token}"
                continue
            return result
        assert result is not None
        return result

    # ------------------------------------------------------------------ lookups
    def _lookup_value(self, raw: Any) -> str | None:
        text = text_of(raw)
        if text is None:
            return None
        if self.lookup_field.lower() == "email":
            return normalise_email(text)
        return text.strip() or None

    def _lookup_values(self, record: OutboundRecord) -> tuple[list[str], int]:
        values: list[str] = []
        invalid = 0
        for section in ("identifiers", "traits"):
            part = record.payload.get(section) or {}
            raw = part.get(self.lookup_field) if isinstance(part, Mapping) else None
            for one in raw if isinstance(raw, (list, tuple)) else [raw] if raw not in (None, "") else []:
                value = self._lookup_value(one)
                if value is None:
                    invalid += 1
                elif value not in values:
                    values.append(value)
        return values, invalid

    def _lookup(
        self, values: list[str], counts: dict[str, float]
    ) -> tuple[dict[str, list[int]], HttpResult | None]:
        """Lead ids by lookup value; the failing result when a lookup call did not succeed."""
        found: dict[str, list[int]] = {}
        email = self.lookup_field.lower() == "email"
        for start in range(0, len(values), MAX_IDS):
            chunk = values[start : start + MAX_IDS]
            params: dict[str, Any] = {
                "filterType": self.lookup_field,
                "filterValues": ",".join(chunk),
                "fields": f"id,{self.lookup_field}",
            }
            token: str | None = None
            while True:
                if token:
                    params["nextPageToken"] = token
                query = urlencode(params)
                if len("/rest/v1/leads.json?") + len(query) > MAX_URI:
                    result = self._call(
                        "POST", "rest/v1/leads.json", counts, params={"_method": "GET"}, data=query
                    )
                else:
                    result = self._call("GET", "rest/v1/leads.json", counts, params=params)
                if result.verdict is not Outcome.ACKNOWLEDGED:
                    return found, result
                body = result.json() or {}
                for lead in body.get("result") or []:
                    key = text_of(lead.get(self.lookup_field))
                    if key is None or "id" not in lead:
                        continue
                    key = key.strip().lower() if email else key.strip()
                    found.setdefault(key, []).append(int(lead["id"]))
                token = body.get("nextPageToken")
                if not token or not body.get("moreResult", False):
                    break
        return found, None

    # ------------------------------------------------------------------ sending
    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Look the batch's leads up and change the list's membership; one result per record."""
        list_id = MarketoConnection.model_validate(dict(context.connection_settings)).list_id
        counts: dict[str, float] = dict.fromkeys(
            (
                "records", "members_sent", "sent_with_email", "invalid_email", "platform_received",
                "platform_invalid", "leads_not_found", "no_usable_identifier", "http_requests", "http_retries",
                "token_refreshes",
            ),
            0.0,
        )  # fmt: skip
        kind = "email" if self.lookup_field.lower() == "email" else self.lookup_field
        items = [_Item(r) for r in records]
        for item in items:
            counts["records"] += 1
            item.lookups, invalid = self._lookup_values(item.record)
            counts[f"invalid_{kind}"] = counts.get(f"invalid_{kind}", 0.0) + invalid
            if item.record.operation not in (Operation.ADD, Operation.REMOVE):
                item.outcome, item.reason = Outcome.FAILED, f"unsupported {item.record.operation}"
            elif not item.lookups:
                counts["no_usable_identifier"] += 1
                item.outcome = Outcome.FAILED
                item.reason = f"no valid {self.lookup_field} to find the lead by" + (
                    f" ({invalid} invalid values left out)" if invalid else ""
                )
        try:
            self._resolve_leads([i for i in items if i.outcome is None], counts)
            for operation in (Operation.ADD, Operation.REMOVE):
                todo = [i for i in items if i.outcome is None and i.record.operation is operation]
                if todo:
                    self._membership(operation, list_id, todo, counts)
        except TransientDestinationError as error:
            for item in items:
                if item.outcome is None:
                    item.outcome, item.reason = Outcome.RETRY, str(error)
        results: list[RecordResult] = []
        for item in items:
            outcome = item.outcome or Outcome.RETRY
            if outcome is Outcome.ACKNOWLEDGED and item.lead_ids:
                counts["members_sent"] += 1
                if kind == "email":
                    counts["sent_with_email"] += 1
            sent = {
                "list_id": list_id,
                "operation": item.record.operation.value,
                "lookup_field": self.lookup_field,
                "lookup_sha256": [sha256_hex(v) for v in item.lookups],
                "lead_ids": item.lead_ids,
            }
            response = {"statuses": {str(k): v for k, v in item.statuses.items()}} if item.statuses else None
            results.append(RecordResult(item.record.record_id, outcome, item.reason, sent, response))
        return BatchResult(results, counts)

    def _resolve_leads(self, items: list[_Item], counts: dict[str, float]) -> None:
        if not items:
            return
        if self.lookup_field.lower() == "id":
            for item in items:
                item.lead_ids = [int(v) for v in item.lookups if v.isdigit()]
        else:
            values = list(dict.fromkeys(v for item in items for v in item.lookups))
            found, failed = self._lookup(values, counts)
            if failed is not None:
                outcome = Outcome.FAILED if failed.verdict is Outcome.FAILED else Outcome.RETRY
                for item in items:
                    item.outcome, item.reason = outcome, f"lead lookup failed: {failed.reason}"
                return
            for item in items:
                item.lead_ids = list(dict.fromkeys(i for v in item.lookups for i in found.get(v, [])))
        for item in items:
            if item.lead_ids:
                continue
            counts["leads_not_found"] += 1
            if item.record.operation is Operation.REMOVE:
                item.outcome, item.reason = Outcome.ACKNOWLEDGED, "no such lead in Marketo: nothing to remove"
            else:
                item.outcome, item.reason = (
                    Outcome.FAILED,
                    f"lead not found in Marketo by {self.lookup_field}",
                )

    def _membership(
        self, operation: Operation, list_id: int, items: list[_Item], counts: dict[str, float]
    ) -> None:
        ids = list(dict.fromkeys(i for item in items for i in item.lead_ids))
        status: dict[int, tuple[bool, str]] = {}
        benign = BENIGN_SKIPS.get(operation, frozenset())
        method = "POST" if operation is Operation.ADD else "DELETE"
        for start in range(0, len(ids), MAX_IDS):
            chunk = ids[start : start + MAX_IDS]
            result = self._call(method, f"rest/v1/lists/{list_id}/leads.json", counts, params={"id": chunk})
            if result.verdict is not Outcome.ACKNOWLEDGED:
                outcome = Outcome.FAILED if result.verdict is Outcome.FAILED else Outcome.RETRY
                for item in items:
                    if set(item.lead_ids) & set(chunk) and item.outcome is None:
                        item.outcome, item.reason = outcome, f"list membership call failed: {result.reason}"
                continue
            for entry in (result.json() or {}).get("result") or []:
                lead_id = int(entry.get("id", -1))
                state = str(entry.get("status", ""))
                codes = {str(r.get("code")) for r in entry.get("reasons") or [] if isinstance(r, dict)}
                why = "; ".join(f"{r.get('code')} {r.get('message', '')}" for r in entry.get("reasons") or [])
                ok = state in ("added", "removed") or (state == "skipped" and bool(codes) and codes <= benign)
                counts["platform_received" if ok else "platform_invalid"] += 1
                status[lead_id] = (ok, f"{state}" + (f" ({why})" if why else ""))
        for item in items:
            if item.outcome is not None:
                continue
            item.statuses = {i: status[i][1] for i in item.lead_ids if i in status}
            missing = [i for i in item.lead_ids if i not in status]
            refused = [f"lead {i}: {status[i][1]}" for i in item.lead_ids if i in status and not status[i][0]]
            if refused:
                item.outcome, item.reason = Outcome.FAILED, "; ".join(refused)
            elif missing:
                item.outcome, item.reason = Outcome.RETRY, "no status returned for some leads"
            else:
                item.outcome = Outcome.ACKNOWLEDGED

    def close(self) -> None:
        """Close HTTP connections."""
        self.sender.close()
