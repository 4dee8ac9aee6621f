"""A fake Salesforce Marketing Cloud tenant: the auth server's `POST /v2/token` (client credentials, tokens
that expire after `token_ttl`, the answer naming this server as `rest_instance_url`) and the synchronous
`POST /hub/v1/dataevents/key:{key}/rowset` on data extensions with primary keys and columns.

Marketing Cloud's rules kept here: a bad or expired token gets 401 `Not Authorized`; a rowset is taken or
refused as a whole (400 with `additionalErrors`) when a row lacks the primary key or names a column the data
extension does not have; rows are upserted on their primary key. More than 50 rows in a call is against
Salesforce's guideline but not refused: it is noted in `violations`.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from activation_pipeline.sandbox.base import RecordedRequest, Reply, SandboxServer

ROWSET = re.compile(r"^/hub/v1/dataevents/key:([^/]+)/rowset$")
GUIDELINE_ROWS = 50
DOCS = "https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/error-handling.html"


@dataclass
class DataExtension:
    """A data extension: primary key columns, the other columns (None: any), and rows by primary key."""

    primary_keys: tuple[str, ...]
    columns: frozenset[str] | None = None
    rows: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)

    def row(self, **keys: Any) -> dict[str, Any] | None:
        """The row with these primary key values."""
        return self.rows.get(tuple(str(keys[k]) for k in self.primary_keys))


def mc_error(status: int, message: str, *additional: str) -> Reply:
    """Marketing Cloud's REST error answer."""
    body: dict[str, Any] = {
        "message": message,
        "errorcode": 10000 if status == 400 else 0,
        "documentation": DOCS,
    }
    if additional:
        body["additionalErrors"] = [
            {"message": m, "errorcode": 10000, "documentation": ""} for m in additional
        ]
    return Reply(status, body)


class MarketingCloudSandbox(SandboxServer):
    """Fake <subdomain>.auth and .rest.marketingcloudapis.com on one port."""

    name = "salesforce_marketing_cloud"

    def __init__(
        self,
        *,
        client_id: str = "sfmc-sandbox-client-id",
        client_secret: str = "sfmc-sandbox-client-secret",  # noqa: S107 - a fake server's test secret
        token_ttl: int = 1079,
        create_missing: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`create_missing`: a rowset for an unknown key creates the data extension (keyed as the first row),
        as if it had been set up in Contact Builder; off, unknown keys are refused as Marketing Cloud does."""
        super().__init__(host, port)
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.create_missing = create_missing
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.data_extensions: dict[str, DataExtension] = {}
        self.violations: list[str] = []
        self._state = threading.Lock()

    # ------------------------------------------------------------------ helpers for tests
    def add_data_extension(
        self, key: str, primary_keys: tuple[str, ...], columns: tuple[str, ...] | None
    ) -> None:
        """Create a data extension (columns None: any column)."""
        with self._state:
            self.data_extensions[key] = DataExtension(
                primary_keys, None if columns is None else frozenset((*primary_keys, *columns))
            )

    def rows(self, key: str) -> list[dict[str, Any]]:
        """Every row of a data extension."""
        with self._state:
            found = self.data_extensions.get(key)
            return [dict(r) for r in found.rows.values()] if found else []

    def expire_tokens(self) -> None:
        """Every issued token expires now."""
        with self._state:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    # ------------------------------------------------------------------ dispatch
    def handle(self, request: RecordedRequest) -> Reply:
        """Serve the token endpoint and rowset upserts."""
        if request.path == "/v2/token":
            return self._token(request)
        match = ROWSET.match(request.path)
        if match is None:
            return mc_error(404, "Not Found")
        if request.method != "POST":
            return mc_error(405, "Method Not Allowed")
        header = request.header("authorization") or ""
        with self._state:
            expires = (
                self.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
            )
        if expires is None or expires <= time.time():
            return mc_error(401, "Not Authorized")
        try:
            rows = json.loads(request.body)
        except ValueError:
            return mc_error(400, "Invalid JSON")
        return self._rowset(match.group(1), rows)

    def _token(self, request: RecordedRequest) -> Reply:
        if request.method != "POST":
            return Reply(405, {"error": "invalid_request"})
        try:
            body = json.loads(request.body)
        except ValueError:
            return Reply(400, {"error": "invalid_request", "error_description": "JSON body required"})
        if not isinstance(body, Mapping) or body.get("grant_type") != "client_credentials":
            return Reply(
                400, {"error": "unsupported_grant_type", "error_description": "Use client_credentials"}
            )
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            return Reply(
                401, {"error": "invalid_client", "error_description": "Client authentication failed."}
            )
        token = secrets.token_urlsafe(24)
        with self._state:
            self.tokens[token] = time.time() + self.token_ttl
            self.tokens_issued += 1
        return Reply(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_ttl,
                "scope": "data_extensions_read data_extensions_write",
                "soap_instance_url": f"{self.url}/soap/",
                "rest_instance_url": f"{self.url}/",
            },
        )

    def _rowset(self, key: str, rows: Any) -> Reply:
        if not isinstance(rows, list) or not rows:
            return mc_error(400, "The request body must be an array of rows")
        if len(rows) > GUIDELINE_ROWS:
            with self._state:
                self.violations.append(f"{len(rows)} rows in one rowset call (guideline: {GUIDELINE_ROWS})")
        with self._state:
            extension = self.data_extensions.get(key)
            if extension is None and self.create_missing and isinstance(rows[0], Mapping):
                first_keys = rows[0].get("keys")
                if isinstance(first_keys, Mapping) and first_keys:
                    extension = self.data_extensions[key] = DataExtension(tuple(first_keys))
            if extension is None:
                return mc_error(400, f"Unable to find a data extension with external key {key}")
            problems: list[str] = []
            for index, row in enumerate(rows):
                keys = row.get("keys") if isinstance(row, Mapping) else None
                values = row.get("values", {}) if isinstance(row, Mapping) else None
                if not isinstance(keys, Mapping) or set(keys) != set(extension.primary_keys):
                    problems.append(f"Row {index}: no primary key property was specified for the row")
                    continue
                if not isinstance(values, Mapping):
                    problems.append(f"Row {index}: values must be an object")
                    continue
                if extension.columns is not None:
                    problems += [
                        f"Row {index}: the column '{c}' does not exist"
                        for c in values
                        if c not in extension.columns
                    ]
                problems += [
                    f"Row {index}: the value of '{c}' is not a scalar"
                    for c, v in values.items()
                    if isinstance(v, (Mapping, list))
                ]
            if problems:
                return mc_error(400, f"Unable to save rows for data extension {key}", *problems)
            for row in rows:
                identity = tuple(str(row["keys"][k]) for k in extension.primary_keys)
                extension.rows.setdefault(identity, {}).update({**row["keys"], **row.get("values", {})})
        return Reply(200, rows)
