"""Google Ads Customer Match through the Data Manager API (`audienceMembers:ingest` / `:remove`).

Each request names one destination (the Google Ads operating account and the user list as
`productDestinationId`), carries at most 10,000 audience members of one data type (user data, mobile ids or
user ids: Google refuses mixed types), declares `encoding` (HEX or BASE64), and on ingest the request-level
`consent` and `termsOfService`. Contact identifiers follow Google's formatting page: email trimmed of all
whitespace and lowercased, gmail.com/googlemail.com without dots and `+suffix`; phone E.164 with `+`; given
and family name lowercased without prefixes/suffixes; all SHA-256. Region code and postal code go unhashed
inside `address`, which is sent only when all four address parts are known (records with some but not all
are counted as `incomplete_address`). Consent: the destination's `consent` goes on every ingest request; a
connection reading consent from profile traits adds each member's own `consent` (which overrides it).

Data Manager fails fast: one invalid member fails the whole request and nothing is ingested. The client maps
the `BadRequest.fieldViolations` indices to their records (failed, with the reason) and sends the others
again. `RESOURCE_EXHAUSTED` waits for the `RetryInfo.retryDelay` the answer gives.
"""

from __future__ import annotations

import re
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
from activation_pipeline.destinations.google_ads_remarketing_lists.rules import GOOGLE
from activation_pipeline.destinations.google_ads_remarketing_lists.settings import (
    GoogleAdsConnection,
    GoogleAdsDestination,
)
from activation_pipeline.destinations.http import (
    ClientOptions,
    Verdict,
    is_retryable_status,
    parse_retry_after,
    short_body,
)
from activation_pipeline.destinations.normalise import Encoding, RecordNormaliser
from activation_pipeline.destinations.normalise.figures import ListFigures
from activation_pipeline.destinations.normalise.record import NormalisedRecord

MAX_MEMBERS = 10_000
MAX_IDENTIFIERS = 10
MAX_MOBILE_IDS = 10
INGEST_PATH = "v1/audienceMembers:ingest"
REMOVE_PATH = "v1/audienceMembers:remove"
RETRY_STATUSES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "INTERNAL"})
_MEMBER_INDEX = re.compile(r"audience_?[mM]embers\[(\d+)\]")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)s")
ADDRESS_PARTS = ("address.givenName", "address.familyName", "address.regionCode", "address.postalCode")
CONSENT = {"granted": "CONSENT_GRANTED", "denied": "CONSENT_DENIED"}


def _seconds(value: Any) -> float | None:
    """A google.protobuf.Duration in JSON (`"2.5s"` or `{"seconds": 2, "nanos": 5e8}`) as seconds."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        return float(match.group(1)) if match else None
    if isinstance(value, dict):
        return float(value.get("seconds", 0) or 0) + float(value.get("nanos", 0) or 0) / 1e9
    return None


def google_error(body: Any) -> Mapping[str, Any] | None:
    """The `error` (google.rpc.Status) of an answer, if any."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return None


def retry_delay(error: Mapping[str, Any]) -> float | None:
    """The retry delay a Google error asks for (RetryInfo or QuotaErrorDetails), in seconds."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and "retryDelay" in detail:
            return _seconds(detail["retryDelay"])
    return None


def error_reasons(error: Mapping[str, Any]) -> list[str]:
    """The ErrorInfo reasons of a Google error (e.g. TERMS_AND_CONDITIONS_NOT_SIGNED)."""
    return [
        str(d["reason"])
        for d in error.get("details") or []
        if isinstance(d, dict) and "reason" in d and "fieldViolations" not in d
    ]


def member_violations(error: Mapping[str, Any]) -> dict[int, str]:
    """Audience member index -> reason, from the BadRequest field violations of a fast-fail error."""
    found: dict[int, str] = {}
    for detail in error.get("details") or []:
        for violation in (detail.get("fieldViolations") or []) if isinstance(detail, dict) else []:
            match = _MEMBER_INDEX.search(str(violation.get("field", "")))
            if match:
                reason = str(violation.get("reason") or violation.get("description") or "invalid")
                found.setdefault(int(match.group(1)), reason)
    return found


def classify_google(response: requests.Response) -> Verdict:
    """Judge a Data Manager answer: quota and availability errors retry, honouring `retryDelay`."""
    status = response.status_code
    if 200 <= status < 300:
        return Verdict(Outcome.ACKNOWLEDGED)
    try:
        error = google_error(response.json())
    except ValueError:
        error = None
    if error is not None:
        code = str(error.get("status") or "")
        if code in RETRY_STATUSES or is_retryable_status(status):
            hint = retry_delay(error) or parse_retry_after(response.headers.get("Retry-After"))
            return Verdict(Outcome.RETRY, hint, reason=f"HTTP {status} {code}")
        reasons = ",".join(error_reasons(error)) or code
        return Verdict(
            Outcome.FAILED, reason=f"HTTP {status} {reasons}: {str(error.get('message', ''))[:200]}"
        )
    if is_retryable_status(status):
        return Verdict(
            Outcome.RETRY, parse_retry_after(response.headers.get("Retry-After")), reason=f"HTTP {status}"
        )
    return Verdict(Outcome.FAILED, reason=f"HTTP {status}: {short_body(response)}")


@dataclass
class _Member:
    record: OutboundRecord
    kind: str
    body: dict[str, Any]
    sent: NormalisedRecord


def incomplete_address(values: NormalisedRecord) -> bool:
    """Whether a record has some but not all four address parts (Google matches an address only whole)."""
    have = sum(1 for part in ADDRESS_PARTS if values.values.get(part))
    return 0 < have < len(ADDRESS_PARTS)


def _member(record: OutboundRecord, values: NormalisedRecord) -> _Member | None:
    """The audience member of one record, or None when it has nothing Google can match."""
    v = values.values
    identifiers: list[dict[str, Any]] = []
    kept: dict[str, list[str]] = {}
    for key, wire in (("emailAddress", "emailAddress"), ("phoneNumber", "phoneNumber")):
        for value in v.get(key, []):
            if len(identifiers) < MAX_IDENTIFIERS:
                identifiers.append({wire: value})
                kept.setdefault(key, []).append(value)
    if all(v.get(part) for part in ADDRESS_PARTS) and len(identifiers) < MAX_IDENTIFIERS:
        parts = {part: v[part][0] for part in ADDRESS_PARTS}
        identifiers.append({"address": {part.split(".", 1)[1]: value for part, value in parts.items()}})
        kept.update({part: [value] for part, value in parts.items()})
    if identifiers:
        return _Member(record, "userData", {"userData": {"userIdentifiers": identifiers}}, _kept(kept))
    mobile = v.get("mobileData.mobileIds", [])[:MAX_MOBILE_IDS]
    if mobile:
        kept = {"mobileData.mobileIds": mobile}
        return _Member(record, "mobileData", {"mobileData": {"mobileIds": mobile}}, _kept(kept))
    user_ids = v.get("userIdData.userId", [])
    if user_ids:
        kept = {"userIdData.userId": user_ids[:1]}
        return _Member(record, "userIdData", {"userIdData": {"userId": user_ids[0]}}, _kept(kept))
    return None


def _consent(consent: Mapping[str, Any]) -> dict[str, str]:
    """A member's consent (`granted` / `denied` per purpose, from its profile traits) in Google's enums."""
    out: dict[str, str] = {}
    for purpose, wire in (("ad_user_data", "adUserData"), ("ad_personalization", "adPersonalization")):
        value = consent.get(purpose)
        if value is not None:
            out[wire] = CONSENT.get(str(value), "CONSENT_DENIED")
    return out


def _kept(values: dict[str, list[str]]) -> NormalisedRecord:
    return NormalisedRecord(values=values)


class GoogleAdsClient:
    """`DestinationClient` for google_ads_remarketing_lists (Customer Match via Data Manager)."""

    max_batch = MAX_MEMBERS

    def __init__(
        self,
        destination: GoogleAdsDestination,
        options: ClientOptions | None = None,
        *,
        validate_only: bool = False,
        max_members: int = MAX_MEMBERS,
    ) -> None:
        """Resolve the OAuth access token and prepare the sender (no request is made here)."""
        opts = options or ClientOptions()
        settings = destination.settings
        token = settings.access_token.resolve(f"destinations.{destination.id}.settings.access_token")
        self.settings = settings
        self.encoding = Encoding(settings.encoding)
        self.validate_only = validate_only
        self.max_members = max(1, min(max_members, MAX_MEMBERS))
        self.normaliser = RecordNormaliser(GOOGLE, opts.default_region, encoding=self.encoding)
        self.sender = opts.sender(
            settings.base_url, headers={"Authorization": f"Bearer {token}"}, classify=classify_google
        )

    def _destination(self, user_list_id: str) -> dict[str, Any]:
        destination: dict[str, Any] = {
            "operatingAccount": {
                "accountType": "GOOGLE_ADS",
                "accountId": self.settings.operating_account_id.replace("-", ""),
            },
            "productDestinationId": user_list_id,
        }
        if self.settings.login_account_id:
            destination["loginAccount"] = {
                "accountType": "GOOGLE_ADS",
                "accountId": self.settings.login_account_id.replace("-", ""),
            }
        return destination

    def _body(self, operation: Operation, user_list_id: str, members: list[_Member]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "destinations": [self._destination(user_list_id)],
            "audienceMembers": [m.body for m in members],
            "encoding": self.encoding.value,
        }
        if operation is Operation.ADD:
            consent = self.settings.consent
            body["consent"] = {
                "adUserData": CONSENT[consent.ad_user_data],
                "adPersonalization": CONSENT[consent.ad_personalization],
            }
            body["termsOfService"] = {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
        if self.validate_only:
            body["validateOnly"] = True
        return body

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Ingest or remove the batch's members; one result per record."""
        figures = ListFigures(GOOGLE)
        figures.add("incomplete_address", 0)
        results: list[RecordResult] = []
        user_list_id = GoogleAdsConnection.model_validate(dict(context.connection_settings)).user_list_id
        groups: dict[tuple[Operation, str], list[_Member]] = {}
        normalised = self.normaliser.normalise_many([r.payload for r in records])
        for record, values in zip(records, normalised, strict=True):
            figures.normalised(values)
            if incomplete_address(values):
                figures.add("incomplete_address")
            if record.operation not in (Operation.ADD, Operation.REMOVE):
                results.append(
                    RecordResult(record.record_id, Outcome.FAILED, f"unsupported {record.operation}")
                )
                continue
            if record.operation is Operation.ADD and not self.settings.terms_of_service_accepted:
                reason = "Customer Match terms of service not accepted (settings.terms_of_service_accepted)"
                results.append(RecordResult(record.record_id, Outcome.FAILED, reason))
                continue
            member = _member(record, values)
            if member is None:
                figures.add("no_usable_identifier")
                reason = "no usable identifier after normalisation"
                if values.invalid:
                    reason += f" ({sum(values.invalid.values())} invalid values left out)"
                results.append(RecordResult(record.record_id, Outcome.FAILED, reason))
                continue
            consent = record.payload.get("consent") if record.operation is Operation.ADD else None
            if isinstance(consent, Mapping) and consent:
                member.body["consent"] = _consent(consent)
            groups.setdefault((record.operation, member.kind), []).append(member)
        for (operation, _kind), members in groups.items():
            for start in range(0, len(members), self.max_members):
                chunk = members[start : start + self.max_members]
                results += self._send_chunk(operation, user_list_id, chunk, figures)
        return BatchResult(results, figures.metrics())

    def _send_chunk(
        self, operation: Operation, user_list_id: str, chunk: list[_Member], figures: ListFigures
    ) -> list[RecordResult]:
        path = INGEST_PATH if operation is Operation.ADD else REMOVE_PATH
        out: list[RecordResult] = []
        pending = chunk
        for _round in range(3):
            result = self.sender.post_json(path, self._body(operation, user_list_id, pending))
            figures.http(result)
            body = result.json()
            if result.verdict is Outcome.ACKNOWLEDGED:
                figures.add("platform_received", len(pending))
                response = body if isinstance(body, dict) else None
                for m in pending:
                    figures.sent(m.sent)
                    out.append(self._result(m, Outcome.ACKNOWLEDGED, "", operation, user_list_id, response))
                return out
            error = google_error(body)
            bad = member_violations(error) if (error is not None and result.verdict is Outcome.FAILED) else {}
            bad = {i: r for i, r in bad.items() if i < len(pending)}
            if not bad:
                outcome = Outcome.FAILED if result.verdict is Outcome.FAILED else Outcome.RETRY
                summary = {"error": {k: error.get(k) for k in ("code", "status")}} if error else None
                for m in pending:
                    out.append(self._result(m, outcome, result.reason, operation, user_list_id, summary))
                return out
            figures.add("platform_invalid", len(bad))
            for index, reason in sorted(bad.items()):
                m = pending[index]
                why = f"rejected by Google: {reason}"
                out.append(self._result(m, Outcome.FAILED, why, operation, user_list_id, {"reason": reason}))
            pending = [m for i, m in enumerate(pending) if i not in bad]
            if not pending:
                return out
        for m in pending:
            reason = "still rejected after removing invalid members"
            out.append(self._result(m, Outcome.RETRY, reason, operation, user_list_id, None))
        return out

    def _result(
        self,
        member: _Member,
        outcome: Outcome,
        reason: str,
        operation: Operation,
        user_list_id: str,
        response: Mapping[str, Any] | None,
    ) -> RecordResult:
        sent = {
            "user_list_id": user_list_id,
            "operation": operation.value,
            "encoding": self.encoding.value,
            "keys": member.sent.values,
        }
        return RecordResult(member.record.record_id, outcome, reason, sent, response)

    def close(self) -> None:
        """Close HTTP connections."""
        self.sender.close()
