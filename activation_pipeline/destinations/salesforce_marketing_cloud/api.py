"""Marketing Cloud REST access shared by both SFMC types: the OAuth 2.0 client-credentials token and the
synchronous data extension rowset upsert.

Token: `POST {auth base URI}/v2/token` with JSON `{grant_type: client_credentials, client_id, client_secret,
account_id?}`; the answer carries `access_token`, `expires_in` (about 20 minutes) and the tenant's
`rest_instance_url`, which every data call uses. The token is fetched again a minute before it expires and
whenever a call answers 401.
Rows: `POST {rest}/hub/v1/dataevents/key:{external key}/rowset` with `[{"keys": {...}, "values": {...}}]`,
at most 50 rows a call (Salesforce's guideline). The call succeeds or fails as a whole: a 400 for a rowset
of several rows is sent again row by row, so only the rows Marketing Cloud refuses fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from activation_pipeline.destinations.base import Outcome
from activation_pipeline.destinations.http import ClientOptions, HttpResult, default_classify
from activation_pipeline.destinations.salesforce_marketing_cloud.settings import MarketingCloudAccess
from activation_pipeline.errors import TransientDestinationError

MAX_ROWS = 50
EXPIRY_MARGIN = 60.0
Row = dict[str, dict[str, Any]]


def cell(value: Any) -> Any:
    """A value a data extension column takes (lists and objects as text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def error_text(result: HttpResult) -> str:
    """Marketing Cloud's error message and additional errors, or the sender's reason."""
    body = result.json()
    if not isinstance(body, Mapping):
        return result.reason
    parts = [str(body.get("message") or "")]
    parts += [str(e.get("message")) for e in body.get("additionalErrors") or [] if isinstance(e, Mapping)]
    text = "; ".join(p for p in parts if p)
    return f"HTTP {result.status}: {text}" if text else result.reason


class MarketingCloudApi:
    """A token that refreshes itself, and rowset upserts with per-row outcomes."""

    def __init__(
        self,
        access: MarketingCloudAccess,
        where: str,
        options: ClientOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id = access.client_id.resolve(f"{where}.client_id")
        self._client_secret = access.client_secret.resolve(f"{where}.client_secret")
        self.account_id = access.account_id
        self.auth = options.sender(access.base_url, classify=default_classify)
        self.options = options
        self.clock = clock
        self.rest: Any = None
        self._rest_url = ""
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.token_fetches = 0

    def token(self, refresh: bool = False, stale: str | None = None) -> str:
        """A valid access token (fetched on first use, before expiry, or when `refresh` replaces `stale`)."""
        with self._lock:
            if refresh and self._token is not None and self._token != stale:
                return self._token
            if refresh or self._token is None or self.clock() >= self._expires - EXPIRY_MARGIN:
                self._fetch()
            assert self._token is not None
            return self._token

    def _fetch(self) -> None:
        body: dict[str, Any] = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        if self.account_id:
            body["account_id"] = self.account_id
        result = self.auth.post_json("v2/token", body)
        answer = result.json()
        if result.verdict is not Outcome.ACKNOWLEDGED or not isinstance(answer, Mapping):
            raise TransientDestinationError(f"Marketing Cloud token request failed: {result.reason}")
        if "access_token" not in answer or "rest_instance_url" not in answer:
            raise TransientDestinationError(
                "Marketing Cloud token answer without access_token or rest_instance_url"
            )
        self.token_fetches += 1
        self._token = str(answer["access_token"])
        self._expires = self.clock() + float(answer.get("expires_in", 1079))
        rest_url = str(answer["rest_instance_url"])
        if rest_url != self._rest_url:
            if self.rest is not None:
                self.rest.close()
            self.rest = self.options.sender(rest_url, headers={"Content-Type": "application/json"})
            self._rest_url = rest_url

    def call(self, path: str, body: Any, counts: dict[str, float]) -> HttpResult:
        """POST with a valid token; a 401 fetches a new token and sends once more."""
        token = self.token()
        result: HttpResult | None = None
        for _attempt in range(2):
            result = self.rest.post_json(path, body, headers={"Authorization": f"Bearer {token}"})
            counts["http_requests"] = counts.get("http_requests", 0.0) + result.attempts
            counts["http_retries"] = counts.get("http_retries", 0.0) + result.retries
            if result.status != 401:
                return result
            counts["token_refreshes"] = counts.get("token_refreshes", 0.0) + 1
            token = self.token(refresh=True, stale=token)
        assert result is not None
        return result

    def upsert(
        self, key: str, rows: Sequence[Row], counts: dict[str, float]
    ) -> list[tuple[Outcome, str, dict[str, Any] | None]]:
        """Upsert rows into a data extension, 50 a call; an outcome, reason and answer per row, in order."""
        out: list[tuple[Outcome, str, dict[str, Any] | None]] = []
        path = f"hub/v1/dataevents/key:{key}/rowset"
        for start in range(0, len(rows), MAX_ROWS):
            chunk = list(rows[start : start + MAX_ROWS])
            try:
                result = self.call(path, chunk, counts)
            except TransientDestinationError as error:
                out += [(Outcome.RETRY, str(error), None)] * len(chunk)
                continue
            if result.verdict is Outcome.FAILED and result.status == 400 and len(chunk) > 1:
                counts["rows_isolated"] = counts.get("rows_isolated", 0.0) + len(chunk)
                out += self.upsert_each(path, chunk, counts)
                continue
            reason = "" if result.verdict is Outcome.ACKNOWLEDGED else error_text(result)
            response = {"status": result.status}
            out += [(result.verdict, reason, response)] * len(chunk)
        return out

    def upsert_each(
        self, path: str, rows: Sequence[Row], counts: dict[str, float]
    ) -> list[tuple[Outcome, str, dict[str, Any] | None]]:
        """Each row on its own, to learn which rows a refused rowset held that Marketing Cloud takes."""
        out: list[tuple[Outcome, str, dict[str, Any] | None]] = []
        for row in rows:
            try:
                result = self.call(path, [row], counts)
            except TransientDestinationError as error:
                out.append((Outcome.RETRY, str(error), None))
                continue
            reason = "" if result.verdict is Outcome.ACKNOWLEDGED else error_text(result)
            out.append((result.verdict, reason, {"status": result.status}))
        return out

    def close(self) -> None:
        """Close both HTTP sessions."""
        self.auth.close()
        if self.rest is not None:
            self.rest.close()
