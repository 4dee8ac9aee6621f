"""Facebook (Meta) Custom Audiences: customer-file members added and removed through the Marketing API.

Wire format (Marketing API `/{audience_id}/users`): POST adds, DELETE removes, JSON body
`{"payload": {"schema": [...], "data": [[...], ...]}, "session": {...}}` with the full multi-key schema in
Meta's order on every request (one schema per session; keys a row lacks are ""), at most 10,000 rows a
request, every personal value normalised per Meta's table and SHA-256 hex; MADID and EXTERN_ID go unhashed.
A record with several values of a key (e.g. two emails) becomes several rows, each one way to match.

Sessions (always sent; Meta requires one): adds and removes of a (sync, connection) are two sessions.
`session_id` is derived from the sync id, connection, operation and client instance (a sync resumed by another
process starts a new session rather than repeating `batch_seq` numbers); `batch_seq`
counts the session's requests (1, 2, 3, ...); `last_batch_flag` is set on the request carrying the
operation's last record of the sync and `estimated_num_total` is the operation's record count (both from
`BatchContext.operation_totals`; without them, the connection's last batch and total).

Throttling is recognised from the error body (codes 4, 17, 32, 613, 80000-80014, or `is_transient`), not
from the HTTP status, and waits for the `X-Business-Use-Case-Usage` / `X-Ad-Account-Usage` hint when given.

Audience: `ensure_audience` uses the connection's `audience_id`; else the id remembered in the state store
(`ClientOptions.memory`, per connection and audience name) after the first sync found or created it; else it
finds the ad account's audience named `audience_name` (default: the connection id) or creates it, and
remembers it. A configured or remembered audience is read once per run: deleted, renamed (remembered ones)
or flagged (`operation_status` 471) fails the connection's records with an error naming the connection.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from activation_pipeline.destinations.base import (
    BatchContext,
    BatchResult,
    Operation,
    OutboundRecord,
    Outcome,
    RecordResult,
)
from activation_pipeline.destinations.facebook_custom_audiences.rules import FACEBOOK, FACEBOOK_SCHEMA
from activation_pipeline.destinations.facebook_custom_audiences.settings import (
    FacebookConnection,
    FacebookDestination,
)
from activation_pipeline.destinations.http import (
    ClientOptions,
    HttpResult,
    Verdict,
    is_retryable_status,
    parse_retry_after,
    short_body,
)
from activation_pipeline.destinations.normalise import RecordNormaliser
from activation_pipeline.destinations.normalise.figures import ListFigures
from activation_pipeline.destinations.normalise.record import NormalisedRecord
from activation_pipeline.errors import TerminalDestinationError, TransientDestinationError

MAX_ROWS = 10_000
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
"""Meta rate-limit error codes: app (4), user (17), page (32), ad account (613), business use case (8000x)."""
TRANSIENT_CODES = frozenset({1, 2})
MATCH_KEYS = frozenset({"EMAIL", "PHONE", "MADID", "EXTERN_ID"})
METHOD = {Operation.ADD: "POST", Operation.REMOVE: "DELETE"}


FLAGGED = 471
"""A custom audience's `operation_status.code` when Meta flagged it (uploads are not used)."""


class AudienceError(TerminalDestinationError):
    """The connection's custom audience is gone, renamed or flagged: the user must act (names the connection)."""


def session_id_for(sync_id: str, connection_id: str, operation: str, client: str = "") -> int:
    """A positive int64 session id derived from the sync, connection, operation and client instance.

    One client numbers a session's requests (`batch_seq` 1, 2, ...); a sync resumed by another process is a
    new session, so its requests never repeat a `batch_seq` Meta already has."""
    digest = hashlib.sha256(f"{sync_id}\x1f{connection_id}\x1f{operation}\x1f{client}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF or 1


def _regain_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds until Meta lets this ad account call again, from its usage headers (None if not given)."""
    waits: list[float] = []
    buc = headers.get("X-Business-Use-Case-Usage")
    if buc:
        try:
            usage = json.loads(buc)
            for entries in usage.values() if isinstance(usage, dict) else ():
                for entry in entries if isinstance(entries, list) else ():
                    minutes = (
                        entry.get("estimated_time_to_regain_access") if isinstance(entry, dict) else None
                    )
                    if isinstance(minutes, int | float) and minutes > 0:
                        waits.append(float(minutes) * 60.0)
        except ValueError:
            pass
    account = headers.get("X-Ad-Account-Usage")
    if account:
        try:
            reset = json.loads(account).get("reset_time_duration")
            if isinstance(reset, int | float) and reset > 0:
                waits.append(float(reset))
        except (ValueError, AttributeError):
            pass
    return max(waits) if waits else None


def meta_error(body: Any) -> Mapping[str, Any] | None:
    """The `error` object of a Graph API answer, if any."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return None


def classify_meta(response: requests.Response) -> Verdict:
    """Judge a Graph API answer: throttle codes and transient errors retry whatever the HTTP status."""
    status = response.status_code
    if 200 <= status < 300:
        return Verdict(Outcome.ACKNOWLEDGED)
    try:
        error = meta_error(response.json())
    except ValueError:
        error = None
    if error is not None:
        code = error.get("code")
        subcode = error.get("error_subcode")
        where = f"Meta error {code}" + (f"/{subcode}" if subcode else "")
        if code in THROTTLE_CODES:
            return Verdict(Outcome.RETRY, _regain_seconds(response.headers), reason=f"{where}: rate limited")
        if code in TRANSIENT_CODES or error.get("is_transient") is True:
            return Verdict(
                Outcome.RETRY, parse_retry_after(response.headers.get("Retry-After")), reason=where
            )
        if not is_retryable_status(status):
            message = str(error.get("error_user_title") or error.get("message") or "")[:200]
            return Verdict(Outcome.FAILED, reason=f"HTTP {status} {where}: {message}")
    if is_retryable_status(status):
        return Verdict(
            Outcome.RETRY, parse_retry_after(response.headers.get("Retry-After")), reason=f"HTTP {status}"
        )
    return Verdict(Outcome.FAILED, reason=f"HTTP {status}: {short_body(response)}")


@dataclass
class _Member:
    record: OutboundRecord
    values: NormalisedRecord
    rows: list[dict[str, str]]


def _rows(values: Mapping[str, list[str]]) -> list[dict[str, str]]:
    """One row per position of the longest value list; single values repeat on every row."""
    depth = max((len(v) for v in values.values()), default=0)
    return [
        {
            key: (vals[i] if i < len(vals) else vals[0] if len(vals) == 1 else "")
            for key, vals in values.items()
        }
        for i in range(depth)
    ]


def _matchable(values: Mapping[str, list[str]]) -> bool:
    return any(values.get(k) for k in MATCH_KEYS) or bool(values.get("FN") and values.get("LN"))


class _Sessions:
    """Per-session request counters and per-operation record counts of this client (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq: dict[int, int] = {}
        self._batches: dict[tuple[str, str], int] = {}
        self._seen: dict[tuple[str, str, str], int] = {}

    def batch(self, context: BatchContext) -> bool:
        """Register a batch of the connection's sync; True when it is the connection's last batch."""
        key = (context.sync_id, context.connection_id)
        with self._lock:
            seen = self._batches.get(key, 0) + 1
            self._batches[key] = seen
        return seen >= context.batch_count

    def see(self, context: BatchContext, operation: str, records: int) -> int:
        """Count a batch's records of one operation; the records of it seen in this sync so far."""
        key = (context.sync_id, context.connection_id, operation)
        with self._lock:
            seen = self._seen.get(key, 0) + records
            self._seen[key] = seen
            return seen

    def next_seq(self, session_id: int) -> int:
        """The next `batch_seq` of a session (1, 2, 3, ...)."""
        with self._lock:
            seq = self._seq.get(session_id, 0) + 1
            self._seq[session_id] = seq
            return seq


class FacebookClient:
    """`DestinationClient` for facebook_custom_audiences."""

    max_batch = MAX_ROWS

    def __init__(
        self,
        destination: FacebookDestination,
        options: ClientOptions | None = None,
        *,
        max_rows: int = MAX_ROWS,
    ) -> None:
        """Resolve the access token and prepare the sender (no request is made here)."""
        opts = options or ClientOptions()
        settings = destination.settings
        token = settings.access_token.resolve(f"destinations.{destination.id}.settings.access_token")
        self.settings = settings
        self.version = settings.api_version
        self.account = settings.ad_account_id.removeprefix("act_")
        self.max_rows = max(1, min(max_rows, MAX_ROWS))
        self.normaliser = RecordNormaliser(FACEBOOK, opts.default_region)
        self.sender = opts.sender(
            settings.base_url, headers={"Authorization": f"Bearer {token}"}, classify=classify_meta
        )
        self._sessions = _Sessions()
        self._instance = uuid.uuid4().hex
        self._audiences: dict[str, str] = {}
        self._audience_lock = threading.Lock()
        self.memory = opts.memory

    # ------------------------------------------------------------------ audiences
    def ensure_audience(self, connection_settings: Mapping[str, Any], connection_id: str) -> str:
        """The connection's custom audience id: configured, remembered from an earlier run, found by name in
        the ad account, or created; checked once per client (deleted, renamed or flagged audiences raise
        `AudienceError` naming the connection)."""
        settings = FacebookConnection.model_validate(dict(connection_settings))
        name = settings.audience_name or connection_id
        with self._audience_lock:
            cached = self._audiences.get(connection_id)
            if cached:
                return cached
            if settings.audience_id:
                audience_id = settings.audience_id
                self._check_audience(audience_id, None, connection_id, "its configured audience_id")
            else:
                key = f"audience_id:{name}"
                remembered = self.memory.get(connection_id, key) if self.memory is not None else None
                if remembered is not None:
                    audience_id = remembered
                    self._check_audience(audience_id, name, connection_id, "the audience it uses")
                else:
                    found = self._find_audience(name)
                    audience_id = found if found is not None else self._create_audience(name, connection_id)
                    if self.memory is not None:
                        self.memory.put(connection_id, key, audience_id)
            self._audiences[connection_id] = audience_id
            return audience_id

    def _check_audience(self, audience_id: str, name: str | None, connection_id: str, what: str) -> None:
        """Raise `AudienceError` when the audience is gone, renamed (when `name` is expected) or flagged."""
        result = self.sender.request(
            "GET", f"{self.version}/{audience_id}", params={"fields": "id,name,operation_status"}
        )
        body = result.json()
        error = meta_error(body)
        if result.verdict is Outcome.RETRY:
            raise TransientDestinationError(f"reading custom audience {audience_id} failed: {result.reason}")
        where = f"connection {connection_id}: {what} ({audience_id})"
        if error is not None and error.get("code") == 100:
            raise AudienceError(
                f"{where} no longer exists in ad account act_{self.account} (deleted in Ads Manager?); set "
                "the connection's audience_id to an existing audience, or a new audience_name to create one"
            )
        if result.verdict is not Outcome.ACKNOWLEDGED or not isinstance(body, dict):
            raise AudienceError(f"{where} cannot be read: {result.reason}")
        status = body.get("operation_status")
        status = status if isinstance(status, dict) else {}
        if status.get("code") == FLAGGED:
            description = str(status.get("description", ""))[:160]
            raise AudienceError(
                f"{where} is flagged by Meta (operation_status 471: {description}); nothing is uploaded "
                "until it is resolved in Ads Manager"
            )
        if name is not None and body.get("name") != name:
            raise AudienceError(
                f"{where} is now named {str(body.get('name'))[:80]!r} in Ads Manager, not {name[:80]!r}; "
                "rename it back, or set the connection's audience_name (or audience_id) to the audience to fill"
            )

    def _find_audience(self, name: str) -> str | None:
        path: str | None = f"{self.version}/act_{self.account}/customaudiences"
        params: dict[str, Any] | None = {"fields": "id,name", "limit": 500}
        while path:
            result = self.sender.request("GET", path, params=params)
            if result.verdict is not Outcome.ACKNOWLEDGED:
                raise TransientDestinationError(f"listing custom audiences failed: {result.reason}")
            body = result.json() or {}
            for audience in body.get("data", []):
                if audience.get("name") == name:
                    return str(audience["id"])
            path = (body.get("paging") or {}).get("next")
            params = None
        return None

    def _create_audience(self, name: str, connection_id: str) -> str:
        body = {
            "name": name,
            "subtype": "CUSTOM",
            "customer_file_source": self.settings.customer_file_source,
            "description": f"Managed by activation-pipeline (connection {connection_id})",
        }
        result = self.sender.post_json(f"{self.version}/act_{self.account}/customaudiences", body)
        created = result.json() or {}
        if result.verdict is not Outcome.ACKNOWLEDGED or "id" not in created:
            raise TransientDestinationError(f"creating custom audience failed: {result.reason}")
        return str(created["id"])

    # ------------------------------------------------------------------ sending
    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Add/remove the batch's members; one result per record (all rows of a record go together).

        Adds and removes are separate Meta sessions, each with its own `batch_seq`, `last_batch_flag` (on
        the request carrying the operation's last record of the sync) and `estimated_num_total` (the
        operation's record count, `BatchContext.operation_totals`); a session is sent on every request."""
        figures = ListFigures(FACEBOOK)
        results: list[RecordResult] = []
        last_batch = self._sessions.batch(context)
        try:
            audience_id = self.ensure_audience(context.connection_settings, context.connection_id)
        except AudienceError as error:
            return BatchResult([RecordResult(r.record_id, Outcome.FAILED, str(error)) for r in records])
        except TransientDestinationError as error:
            reason = str(error)
            return BatchResult([RecordResult(r.record_id, Outcome.RETRY, reason) for r in records])
        normalised = self.normaliser.normalise_many([r.payload for r in records])
        by_operation: dict[Operation, list[_Member]] = {}
        per_operation: dict[Operation, int] = {}
        for record, values in zip(records, normalised, strict=True):
            figures.normalised(values)
            if record.operation not in METHOD:
                results.append(
                    RecordResult(record.record_id, Outcome.FAILED, f"unsupported {record.operation}")
                )
                continue
            per_operation[record.operation] = per_operation.get(record.operation, 0) + 1
            if not _matchable(values.values):
                figures.add("no_usable_identifier")
                reason = "no usable identifier after normalisation"
                if values.invalid:
                    reason += f" ({sum(values.invalid.values())} invalid values left out)"
                results.append(RecordResult(record.record_id, Outcome.FAILED, reason))
                continue
            member = _Member(record, values, _rows(values.values)[: self.max_rows])
            by_operation.setdefault(record.operation, []).append(member)
        for operation, count in per_operation.items():
            seen = self._sessions.see(context, operation.value, count)
            members = by_operation.get(operation, [])
            if not members:
                continue
            total = context.operation_totals.get(operation.value)
            finished = seen >= total if total else last_batch
            estimate = total or context.estimated_total
            chunks = self._chunks(members)
            session_id = session_id_for(
                context.sync_id, context.connection_id, operation.value, self._instance
            )
            for index, chunk in enumerate(chunks):
                session: dict[str, Any] = {
                    "session_id": session_id,
                    "batch_seq": self._sessions.next_seq(session_id),
                    "last_batch_flag": finished and index == len(chunks) - 1,
                }
                if estimate:
                    session["estimated_num_total"] = int(estimate)
                results += self._send_chunk(operation, audience_id, chunk, session, figures)
        return BatchResult(results, figures.metrics())

    def _chunks(self, members: list[_Member]) -> list[list[_Member]]:
        chunks: list[list[_Member]] = [[]]
        rows = 0
        for member in members:
            if rows + len(member.rows) > self.max_rows and chunks[-1]:
                chunks.append([])
                rows = 0
            chunks[-1].append(member)
            rows += len(member.rows)
        return [c for c in chunks if c]

    def _send_chunk(
        self,
        operation: Operation,
        audience_id: str,
        chunk: list[_Member],
        session: dict[str, Any],
        figures: ListFigures,
    ) -> list[RecordResult]:
        schema = list(FACEBOOK_SCHEMA)  # one schema for every request of every session
        data = [[row.get(key, "") for key in schema] for m in chunk for row in m.rows]
        body: dict[str, Any] = {"payload": {"schema": schema, "data": data}, "session": session}
        result: HttpResult = self.sender.request(
            METHOD[operation], f"{self.version}/{audience_id}/users", json=body
        )
        figures.http(result)
        answer = result.json() if result.verdict is Outcome.ACKNOWLEDGED else None
        response = answer if isinstance(answer, dict) else None
        if result.verdict is Outcome.ACKNOWLEDGED:
            figures.add("rows_sent", len(data))
            figures.add("platform_received", float((response or {}).get("num_received", 0) or 0))
            figures.add("platform_invalid", float((response or {}).get("num_invalid_entries", 0) or 0))
        outcome = result.verdict
        summary = {k: v for k, v in (response or {}).items() if k != "invalid_entry_samples"}
        out: list[RecordResult] = []
        for member in chunk:
            if outcome is Outcome.ACKNOWLEDGED:
                figures.sent(member.values)
            sent = {
                "audience_id": audience_id,
                "operation": operation.value,
                "keys": member.values.values,
                "session_id": session["session_id"],
                "batch_seq": session["batch_seq"],
            }
            out.append(RecordResult(member.record.record_id, outcome, result.reason, sent, summary or None))
        return out

    def close(self) -> None:
        """Close HTTP connections."""
        self.sender.close()
