"""A fake Meta Marketing API for customer-file Custom Audiences, strict about the wire contract.

Serves `POST|DELETE /{version}/{audience_id}/users`, `POST|GET /{version}/act_{account}/customaudiences` and
`GET /{version}/{audience_id}` (with `operation_status`). Every upload is checked: API version in the path,
access token (Bearer header, or `access_token` in the query string or form body), parameters from the query
string (Meta's SDK sends DELETE so) and a JSON or form-encoded body (the SDK's POST), schema keys known and unique, rows as long as the schema, at most
10,000 rows, every hashed value 64 lowercase hex characters, MADID a hyphenated advertising id, session fields
typed and consistent within a session (same operation, no sequence number twice, nothing after the last
batch, a stable estimate). Violations answer Meta's error JSON (code 100) and are kept in `violations`.
Accepted rows change the audience's membership (`members(audience_id)`); rows holding a value listed in
`invalid_values` count as `num_invalid_entries`, as Meta reports unusable rows.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from activation_pipeline.sandbox.base import Fault, RecordedRequest, Reply, SandboxServer

MULTI_KEYS = frozenset(
    ("EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST", "ZIP", "MADID",
     "COUNTRY", "LOOKALIKE_VALUE")
)  # fmt: skip
SINGLE_KEYS = {
    "EMAIL_SHA256": "EMAIL",
    "PHONE_SHA256": "PHONE",
    "MOBILE_ADVERTISER_ID": "MADID",
    "UID": "EXTERN_ID",
}
UNHASHED = frozenset(("EXTERN_ID", "MADID", "LOOKALIKE_VALUE"))
MAX_ROWS = 10_000
_VERSION = re.compile(r"v\d+\.\d+")
_HEX = re.compile(r"[0-9a-f]{64}")
_MADID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
FILE_SOURCES = frozenset(("USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"))


_AUTH_PARAMS = frozenset(("access_token", "appsecret_proof", "appsecret_time"))
_JSON_PARAMS = ("payload", "session")


def _content_type(request: RecordedRequest) -> str:
    return (request.header("content-type") or "").split(";")[0].strip().lower()


def meta_error_reply(
    status: int, code: int, message: str, subcode: int | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """A Graph API error answer (`{"error": {...}}`)."""
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": uuid.uuid4().hex[:23],
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return Reply(status, {"error": error}, headers or {})


@dataclass
class Audience:
    """A custom audience and the match keys it holds."""

    audience_id: str
    name: str
    account: str
    customer_file_source: str = "BOTH_USER_AND_PARTNER_PROVIDED"
    members: dict[str, set[str]] = field(default_factory=dict)
    operation_status: dict[str, Any] = field(default_factory=lambda: {"code": 200, "description": "Normal"})


@dataclass
class _Session:
    operation: str
    seqs: set[int] = field(default_factory=set)
    last_seq: int | None = None
    estimate: int | None = None


class _InvalidError(Exception):
    def __init__(self, message: str, subcode: int | None = None) -> None:
        super().__init__(message)
        self.subcode = subcode


class FacebookSandbox(SandboxServer):
    """Fake graph.facebook.com for Custom Audiences uploads."""

    name = "facebook"

    def __init__(
        self,
        access_token: str = "sandbox-meta-token",  # noqa: S107 - a fake server's test token
        *,
        api_version: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`api_version`: the only version accepted (any `vNN.N` when None)."""
        super().__init__(host, port)
        self.access_token = access_token
        self.api_version = api_version
        self.audiences: dict[str, Audience] = {}
        self.sessions: dict[tuple[str, int], _Session] = {}
        self.violations: list[str] = []
        self.invalid_values: set[str] = set()
        self.uploads: list[dict[str, Any]] = []
        """Accepted uploads: audience_id, method, rows, session."""
        self._state = threading.Lock()
        self._next_id = 23850000000000000

    # ------------------------------------------------------------------ test helpers
    def create_audience(self, name: str, account: str = "1234567890") -> str:
        """Make an audience directly (as if created in Ads Manager); returns its id."""
        with self._state:
            self._next_id += 1
            audience_id = str(self._next_id)
            self.audiences[audience_id] = Audience(audience_id, name, account.removeprefix("act_"))
            return audience_id

    def flag_audience(self, audience_id: str) -> None:
        """Make Meta flag an audience (`operation_status` 471), as its integrity review does."""
        with self._state:
            self.audiences[audience_id].operation_status = {
                "code": 471,
                "description": "This audience is unavailable because it may not comply with our policies.",
            }

    def rename_audience(self, audience_id: str, name: str) -> None:
        """Rename an audience (as a user can in Ads Manager)."""
        with self._state:
            self.audiences[audience_id].name = name

    def delete_audience(self, audience_id: str) -> None:
        """Delete an audience (as a user can in Ads Manager)."""
        with self._state:
            del self.audiences[audience_id]

    def members(self, audience_id: str) -> dict[str, set[str]]:
        """The match keys an audience holds, by schema key."""
        with self._state:
            audience = self.audiences.get(audience_id)
            return {k: set(v) for k, v in audience.members.items()} if audience else {}

    def throttle_next(
        self, count: int, code: int | float | str = 17, *, subcode: int | None = None, regain_minutes: int = 0
    ) -> Fault:
        """Answer the next `count` uploads with a Meta throttling error (HTTP 400, code 4/17/613/80003...)."""
        code = int(code)
        subcode = subcode or {17: 2446079, 613: 1487742, 4: 1504022}.get(code)
        usage = {"1234567890": [{"type": "custom_audience", "call_count": 100, "total_cputime": 20,
                                 "total_time": 20, "estimated_time_to_regain_access": regain_minutes}]}  # fmt: skip
        reply = meta_error_reply(
            400,
            code,
            f"(#{code}) User request limit reached",
            subcode,
            {"X-Business-Use-Case-Usage": json.dumps(usage)},
        )
        return self.add_fault(Fault(reply, lambda r: r.path.endswith("/users"), count))

    # ------------------------------------------------------------------ dispatch
    def handle(self, request: RecordedRequest) -> Reply:
        """Route a Graph API request."""
        parts = [p for p in request.path.split("/") if p]
        if not parts or not _VERSION.fullmatch(parts[0]):
            return self._violation(f"path without an API version: {request.path}", status=400)
        if self.api_version is not None and parts[0] != self.api_version:
            return self._violation(f"unsupported API version {parts[0]}")
        if not self._authorised(request):
            return meta_error_reply(400, 190, "Invalid OAuth access token - Cannot parse access token")
        rest = parts[1:]
        if len(rest) == 2 and rest[0].startswith("act_") and rest[1] == "customaudiences":
            if request.method == "POST":
                return self._create(request, rest[0].removeprefix("act_"))
            if request.method == "GET":
                return self._list(rest[0].removeprefix("act_"))
        if len(rest) == 2 and rest[1] == "users" and request.method in ("POST", "DELETE"):
            return self._users(request, rest[0])
        if len(rest) == 1 and request.method == "GET":
            audience = self.audiences.get(rest[0])
            if audience is None:
                return meta_error_reply(400, 100, "Unsupported get request. Object does not exist", 33)
            fields = (request.query.get("fields") or ["id"])[0].split(",")
            known = {
                "id": audience.audience_id,
                "name": audience.name,
                "operation_status": audience.operation_status,
                "customer_file_source": audience.customer_file_source,
                "subtype": "CUSTOM",
            }
            return Reply(200, {f: known[f] for f in fields if f in known} | {"id": audience.audience_id})
        return meta_error_reply(400, 100, f"Unknown path components: {request.path}", 2500)

    def _authorised(self, request: RecordedRequest) -> bool:
        """A Bearer header, or `access_token` in the query string or a form body (what Meta's SDK sends)."""
        header = request.header("authorization") or ""
        if header.startswith("Bearer "):
            return header[7:] == self.access_token
        token = request.query.get("access_token", [""])[0]
        if not token and _content_type(request) == "application/x-www-form-urlencoded":
            token = parse_qs(request.body.decode("utf-8", "replace")).get("access_token", [""])[0]
        return token == self.access_token

    def _violation(self, message: str, status: int = 400, subcode: int | None = None) -> Reply:
        with self._state:
            self.violations.append(message)
        return meta_error_reply(status, 100, f"Invalid parameter: {message}", subcode)

    def _body(self, request: RecordedRequest) -> dict[str, Any]:
        """The call's parameters as the Graph API reads them: query string, then a JSON or form body.

        Meta's SDK sends DELETE with every parameter in the query string and POST form-encoded, with
        object parameters (`payload`, `session`) as JSON text; others send a JSON body."""
        params: dict[str, Any] = {k: v[0] for k, v in request.query.items() if k not in _AUTH_PARAMS}
        ctype = _content_type(request)
        text = request.body.decode("utf-8")
        if ctype == "application/json":
            body = json.loads(text) if text else {}
            if not isinstance(body, dict):
                raise _InvalidError("JSON body must be an object")
            params.update(body)
        elif ctype == "application/x-www-form-urlencoded":
            params.update({k: v[0] for k, v in parse_qs(text).items() if k not in _AUTH_PARAMS})
        elif text.strip():
            raise _InvalidError(f"unsupported Content-Type {ctype!r}")
        for key in _JSON_PARAMS:
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params

    # ------------------------------------------------------------------ audiences
    def _create(self, request: RecordedRequest, account: str) -> Reply:
        try:
            body = self._body(request)
        except (_InvalidError, ValueError) as error:
            return self._violation(str(error))
        if not body.get("name") or body.get("subtype") != "CUSTOM":
            return self._violation("customaudiences needs a name and subtype CUSTOM")
        source = body.get("customer_file_source")
        if source not in FILE_SOURCES:
            return self._violation(f"customer_file_source must be one of {sorted(FILE_SOURCES)}")
        audience_id = self.create_audience(str(body["name"]), account)
        self.audiences[audience_id].customer_file_source = str(source)
        return Reply(200, {"id": audience_id})

    def _list(self, account: str) -> Reply:
        with self._state:
            data = [
                {"id": a.audience_id, "name": a.name} for a in self.audiences.values() if a.account == account
            ]
        return Reply(200, {"data": data, "paging": {"cursors": {"before": "", "after": ""}}})

    # ------------------------------------------------------------------ uploads
    def _users(self, request: RecordedRequest, audience_id: str) -> Reply:
        audience = self.audiences.get(audience_id)
        if audience is None:
            return meta_error_reply(400, 100, "Unsupported post request. Object does not exist", 33)
        try:
            body = self._body(request)
            schema, rows = self._payload(body.get("payload"))
            session = self._session(audience_id, request.method, body.get("session"))
        except (_InvalidError, ValueError) as error:
            return self._violation(str(error), subcode=getattr(error, "subcode", None))
        invalid = 0
        samples: dict[str, str] = {}
        with self._state:
            for row in rows:
                bad = [v for v in row if v and v in self.invalid_values]
                if bad:
                    invalid += 1
                    samples.setdefault(bad[0], "INVALID_ENTRY")
                    continue
                for key, value in zip(schema, row, strict=True):
                    if not value:
                        continue
                    bucket = audience.members.setdefault(key, set())
                    if request.method == "POST":
                        bucket.add(value)
                    else:
                        bucket.discard(value)
            self.uploads.append(
                {"audience_id": audience_id, "method": request.method, "rows": len(rows), "session": session}
            )
        session_id = str(session["session_id"]) if session else str(uuid.uuid4().int % 10**15)
        return Reply(
            200,
            {
                "audience_id": audience_id,
                "session_id": session_id,
                "num_received": len(rows),
                "num_invalid_entries": invalid,
                "invalid_entry_samples": samples,
            },
        )

    def _payload(self, payload: Any) -> tuple[list[str], list[list[str]]]:
        if not isinstance(payload, dict):
            raise _InvalidError("payload must be an object with schema and data")
        schema_in = payload.get("schema")
        data = payload.get("data")
        if isinstance(schema_in, str):
            if schema_in not in SINGLE_KEYS:
                raise _InvalidError(f"unknown single-key schema {schema_in!r}")
            if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
                raise _InvalidError("single-key data must be a list of strings")
            schema = [SINGLE_KEYS[schema_in]]
            rows = [[v] for v in data]
        else:
            if not isinstance(schema_in, list) or not schema_in:
                raise _InvalidError("schema must be a key or a non-empty list of keys")
            unknown = [k for k in schema_in if k not in MULTI_KEYS]
            if unknown:
                raise _InvalidError(f"unknown schema keys {unknown}")
            if len(set(schema_in)) != len(schema_in):
                raise _InvalidError("schema keys repeated")
            schema = [str(k) for k in schema_in]
            if not isinstance(data, list):
                raise _InvalidError("data must be a list of rows")
            rows = data
            for i, row in enumerate(rows):
                if not isinstance(row, list) or len(row) != len(schema):
                    raise _InvalidError(f"data[{i}] must be a list of {len(schema)} values in schema order")
                if not all(isinstance(v, str) for v in row):
                    raise _InvalidError(f"data[{i}] values must be strings")
        if not rows:
            raise _InvalidError("data is empty")
        if len(rows) > MAX_ROWS:
            raise _InvalidError(f"{len(rows)} rows in one request; at most {MAX_ROWS}", subcode=1870053)
        for i, row in enumerate(rows):
            if not any(row):
                raise _InvalidError(f"data[{i}] has no value")
            for key, value in zip(schema, row, strict=True):
                if not value:
                    continue
                if key == "MADID":
                    if _MADID.fullmatch(value) is None:
                        raise _InvalidError(f"data[{i}] MADID is not an advertising id")
                elif key not in UNHASHED and _HEX.fullmatch(value) is None:
                    raise _InvalidError(f"data[{i}] {key} is not a SHA-256 lowercase hex digest")
        return schema, rows

    def _session(self, audience_id: str, method: str, session: Any) -> dict[str, Any] | None:
        if session is None:
            return None
        if not isinstance(session, dict):
            raise _InvalidError("session must be an object")
        sid, seq, last = session.get("session_id"), session.get("batch_seq"), session.get("last_batch_flag")
        estimate = session.get("estimated_num_total")
        if not isinstance(sid, int) or isinstance(sid, bool) or not 0 < sid < 2**63:
            raise _InvalidError("session.session_id must be a positive int64")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise _InvalidError("session.batch_seq must be an integer from 1")
        if not isinstance(last, bool):
            raise _InvalidError("session.last_batch_flag must be a boolean")
        if estimate is not None and (not isinstance(estimate, int) or estimate < 0):
            raise _InvalidError("session.estimated_num_total must be a non-negative integer")
        with self._state:
            state = self.sessions.setdefault((audience_id, sid), _Session(method))
            if state.operation != method:
                raise _InvalidError(f"session {sid} started as {state.operation}, not {method}")
            if seq in state.seqs:
                raise _InvalidError(f"session {sid} batch_seq {seq} sent twice")
            if state.last_seq is not None and seq > state.last_seq:
                raise _InvalidError(f"session {sid} already finished at batch_seq {state.last_seq}")
            if state.estimate is not None and estimate is not None and estimate != state.estimate:
                raise _InvalidError(f"session {sid} estimated_num_total changed")
            state.seqs.add(seq)
            state.estimate = estimate if estimate is not None else state.estimate
            if last:
                state.last_seq = seq
        return dict(session)
