"""A fake Google Data Manager API (`audienceMembers:ingest` / `:remove`) for Customer Match, strict and fast-failing.

Checks every request like the real service: `POST /v1/audienceMembers:ingest|remove`, Bearer token, JSON body
with `destinations` (operating account `GOOGLE_ADS`, digits-only ids, `productDestinationId`), 1 to 10,000
audience members all of one data type, at most 10 user identifiers a member, hashed values in the declared
`encoding` (64 lowercase hex for HEX, 32-byte Base64 for BASE64), `address` with all of givenName/familyName
(hashed) and regionCode/postalCode (plain); optional `consent` (CONSENT_GRANTED/DENIED) on the request and on
each member (the member's overrides); on ingest `termsOfService.customerMatchTermsOfServiceStatus: ACCEPTED`.
Bodies are read as proto3 JSON is: enums by name or number (Google's client sends numbers with
`$alt=json;enum-encoding=int`) and field names in lowerCamelCase or snake_case. Any invalid member fails the whole request
(Google's fast-fail model) with HTTP 400 INVALID_ARGUMENT and a `BadRequest` naming each member. Accepted
requests change the list's membership (`members(user_list_id)`, values as hex). `reject_values` makes members
holding a value fail like an invalid member; `exhaust_next` answers 429 RESOURCE_EXHAUSTED with a retryDelay.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import uuid
from typing import Any

from activation_pipeline.sandbox.base import Fault, RecordedRequest, Reply, SandboxServer, parse_json_body

MAX_MEMBERS = 10_000
MAX_IDENTIFIERS = 10
MAX_MOBILE_IDS = 10
DATA_TYPES = ("userData", "mobileData", "userIdData", "pairData", "ppidData")
ACCOUNT_TYPE_NUMBERS = (
    "ACCOUNT_TYPE_UNSPECIFIED", "GOOGLE_ADS", "DISPLAY_VIDEO_PARTNER", "DISPLAY_VIDEO_ADVERTISER", "DATA_PARTNER",
    "GOOGLE_ANALYTICS_PROPERTY", "GOOGLE_AD_MANAGER_AUDIENCE_LINK", "FLOODLIGHT_CONFIG", "GOOGLE_AD_MANAGER",
)  # fmt: skip
ACCOUNT_TYPES = frozenset(ACCOUNT_TYPE_NUMBERS[1:])
CONSENT_VALUES = frozenset(("CONSENT_GRANTED", "CONSENT_DENIED"))
ENUMS: dict[str, tuple[str, ...]] = {
    "accountType": ACCOUNT_TYPE_NUMBERS,
    "encoding": ("ENCODING_UNSPECIFIED", "HEX", "BASE64"),
    "adUserData": ("CONSENT_STATUS_UNSPECIFIED", "CONSENT_GRANTED", "CONSENT_DENIED"),
    "adPersonalization": ("CONSENT_STATUS_UNSPECIFIED", "CONSENT_GRANTED", "CONSENT_DENIED"),
    "customerMatchTermsOfServiceStatus": ("TERMS_OF_SERVICE_STATUS_UNSPECIFIED", "ACCEPTED", "REJECTED"),
}
"""Enum fields of the request and their values by number (proto3 JSON takes the name or the number)."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def canonical(value: Any, key: str = "") -> Any:
    """A request body as proto3 JSON parsing reads it: snake_case field names as lowerCamelCase, enums given
    as numbers (`$alt=json;enum-encoding=int`, what Google's client library sends) as their names."""
    if isinstance(value, dict):
        return {_camel(k): canonical(v, _camel(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical(v, key) for v in value]
    names = ENUMS.get(key)
    if (
        names is not None
        and isinstance(value, int)
        and not isinstance(value, bool)
        and 0 <= value < len(names)
    ):
        return names[value]
    return value


_HEX = re.compile(r"[0-9a-f]{64}")
_REGION = re.compile(r"[A-Z]{2}")
_MOBILE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DOMAIN = "datamanager.googleapis.com"


def google_error_reply(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Reply:
    """A google.rpc.Status error answer."""
    return Reply(
        status, {"error": {"code": status, "message": message, "status": code, "details": details or []}}
    )


def _info(reason: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": DOMAIN}


def _check_consent(consent: Any, where: str) -> None:
    """Consent is optional (request level, or per member, which overrides it); given, it must be valid."""
    if consent is None:
        return
    if not isinstance(consent, dict) or not set(consent) <= {"adUserData", "adPersonalization"}:
        raise _RejectError("INVALID_ARGUMENT", f"{where} takes adUserData and adPersonalization")
    if not set(consent.values()) <= CONSENT_VALUES | {"CONSENT_STATUS_UNSPECIFIED"}:
        raise _RejectError("INVALID_ENUM_VALUE", f"{where} values must be CONSENT_GRANTED or CONSENT_DENIED")


class _RejectError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class GoogleAdsSandbox(SandboxServer):
    """Fake datamanager.googleapis.com."""

    name = "google_ads"

    def __init__(
        self,
        access_token: str = "sandbox-google-token",  # noqa: S107 - a fake server's test token
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Accept requests bearing `access_token`."""
        super().__init__(host, port)
        self.access_token = access_token
        self.lists: dict[str, dict[str, set[str]]] = {}
        self.violations: list[str] = []
        self.reject_values: set[str] = set()
        """Hex digests (or plain values) that make a member invalid (INVALID_AUDIENCE_MEMBER)."""
        self.ingested: list[dict[str, Any]] = []
        self._state = threading.Lock()

    # ------------------------------------------------------------------ test helpers
    def members(self, user_list_id: str) -> dict[str, set[str]]:
        """What a user list holds: identifier type -> values (hashes as lowercase hex)."""
        with self._state:
            return {k: set(v) for k, v in self.lists.get(user_list_id, {}).items()}

    def exhaust_next(self, count: int, retry_delay: str = "2s") -> Fault:
        """Answer the next `count` requests 429 RESOURCE_EXHAUSTED with a RetryInfo delay."""
        reply = google_error_reply(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Requests'.",
            [
                _info("RESOURCE_EXHAUSTED"),
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
            ],
        )
        return self.add_fault(Fault(reply, None, count))

    # ------------------------------------------------------------------ dispatch
    def handle(self, request: RecordedRequest) -> Reply:
        """Serve ingest and remove."""
        if request.method != "POST" or request.path not in (
            "/v1/audienceMembers:ingest",
            "/v1/audienceMembers:remove",
        ):
            return google_error_reply(404, "NOT_FOUND", f"no method {request.method} {request.path}")
        if request.header("authorization") != f"Bearer {self.access_token}":
            return google_error_reply(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
            )
        body, error = parse_json_body(request)
        if error is not None:
            return self._violation("INVALID_ARGUMENT", str(error.body))
        body = canonical(body)
        ingest = request.path.endswith(":ingest")
        try:
            list_ids = self._destinations(body)
            encoding = self._request_fields(body, ingest)
        except _RejectError as problem:
            return self._violation(problem.reason, str(problem))
        members = body.get("audienceMembers")
        if not isinstance(members, list) or not members:
            return self._violation("REQUIRED_FIELD_MISSING", "audienceMembers is required")
        if len(members) > MAX_MEMBERS:
            return self._violation(
                "TOO_MANY_AUDIENCE_MEMBERS", f"{len(members)} audience members; at most 10000"
            )
        violations: list[dict[str, str]] = []
        parsed: list[dict[str, list[str]]] = []
        kinds: set[str] = set()
        for index, member in enumerate(members):
            try:
                kind, values = self._member(member, encoding)
                kinds.add(kind)
                parsed.append(values)
            except _RejectError as problem:
                violations.append(
                    {
                        "field": f"audience_members[{index}]",
                        "reason": problem.reason,
                        "description": str(problem),
                    }
                )
        if len(kinds) > 1:
            return self._violation(
                "MULTIPLE_DATA_TYPES_NOT_ALLOWED", f"data types {sorted(kinds)} in one request"
            )
        if violations:
            with self._state:
                self.violations += [
                    f"{v['field']}: {v['reason']}"
                    for v in violations
                    if v["reason"] != "INVALID_AUDIENCE_MEMBER"
                ]
            details = [
                _info("INVALID_ARGUMENT"),
                {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations},
            ]
            return google_error_reply(
                400, "INVALID_ARGUMENT", "Request contains an invalid argument.", details
            )
        with self._state:
            for list_id in list_ids:
                held = self.lists.setdefault(list_id, {})
                for values in parsed:
                    for key, vals in values.items():
                        bucket = held.setdefault(key, set())
                        if ingest:
                            bucket.update(vals)
                        else:
                            bucket.difference_update(vals)
            consents = [m.get("consent") or body.get("consent") for m in members]
            self.ingested.append(
                {"path": request.path, "members": len(members), "lists": list_ids, "consents": consents}
            )
        return Reply(200, {"requestId": str(uuid.uuid4())})

    def _violation(self, reason: str, message: str) -> Reply:
        with self._state:
            self.violations.append(f"{reason}: {message}")
        status = 400
        return google_error_reply(status, "INVALID_ARGUMENT", message, [_info(reason)])

    # ------------------------------------------------------------------ checks
    def _destinations(self, body: Any) -> list[str]:
        if not isinstance(body, dict):
            raise _RejectError("INVALID_ARGUMENT", "body must be an object")
        destinations = body.get("destinations")
        if not isinstance(destinations, list) or not destinations:
            raise _RejectError("REQUIRED_FIELD_MISSING", "destinations is required")
        if len(destinations) > 10:
            raise _RejectError("TOO_MANY_DESTINATIONS", "at most 10 destinations")
        ids: list[str] = []
        for d in destinations:
            account = d.get("operatingAccount") if isinstance(d, dict) else None
            if not isinstance(account, dict) or account.get("accountType") not in ACCOUNT_TYPES:
                raise _RejectError(
                    "INVALID_DESTINATION",
                    "operatingAccount.accountType must be GOOGLE_ADS or another product",
                )
            if not str(account.get("accountId", "")).isdigit():
                raise _RejectError(
                    "INVALID_DESTINATION", "operatingAccount.accountId must be digits only (no hyphens)"
                )
            login = d.get("loginAccount")
            if login is not None and not str(login.get("accountId", "")).isdigit():
                raise _RejectError("INVALID_DESTINATION", "loginAccount.accountId must be digits only")
            list_id = str(d.get("productDestinationId", ""))
            if not list_id.isdigit():
                raise _RejectError("INVALID_USER_LIST_ID", "productDestinationId must be the user list id")
            ids.append(list_id)
        return ids

    def _request_fields(self, body: dict[str, Any], ingest: bool) -> str:
        encoding = body.get("encoding")
        if encoding not in ("HEX", "BASE64"):
            raise _RejectError("INVALID_ENUM_VALUE", "encoding must be HEX or BASE64 for user data")
        if not ingest:
            unexpected = {"consent", "termsOfService"} & set(body)
            if unexpected:
                raise _RejectError("INVALID_ARGUMENT", f"unknown fields on remove: {sorted(unexpected)}")
            return str(encoding)
        _check_consent(body.get("consent"), "consent")
        terms = body.get("termsOfService")
        if not isinstance(terms, dict) or terms.get("customerMatchTermsOfServiceStatus") != "ACCEPTED":
            raise _RejectError(
                "TERMS_AND_CONDITIONS_NOT_SIGNED", "Customer Match terms of service not accepted"
            )
        return str(encoding)

    def _digest(self, value: Any, encoding: str, what: str) -> str:
        if not isinstance(value, str):
            raise _RejectError("INVALID_FORMAT", f"{what} must be a string")
        if encoding == "HEX":
            if _HEX.fullmatch(value) is None:
                raise _RejectError("INVALID_SHA256_FORMAT", f"{what} is not a lowercase hex SHA-256")
            return value
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as error:
            raise _RejectError("INVALID_BASE64_ENCODING", f"{what} is not Base64") from error
        if len(raw) != 32:
            raise _RejectError("INVALID_SHA256_FORMAT", f"{what} is not a SHA-256 digest")
        return raw.hex()

    def _member(self, member: Any, encoding: str) -> tuple[str, dict[str, list[str]]]:
        if not isinstance(member, dict):
            raise _RejectError("INVALID_AUDIENCE_MEMBER", "member must be an object")
        _check_consent(member.get("consent"), "audienceMembers.consent")
        kinds = [k for k in DATA_TYPES if k in member]
        if len(kinds) != 1:
            raise _RejectError(
                "INVALID_AUDIENCE_MEMBER", "exactly one of userData, mobileData, userIdData, ... is required"
            )
        kind = kinds[0]
        values: dict[str, list[str]] = {}
        if kind == "userData":
            identifiers = (member["userData"] or {}).get("userIdentifiers")
            if not isinstance(identifiers, list) or not identifiers:
                raise _RejectError("REQUIRED_FIELD_MISSING", "userData.userIdentifiers is required")
            if len(identifiers) > MAX_IDENTIFIERS:
                raise _RejectError("TOO_MANY_USER_IDENTIFIERS", "at most 10 user identifiers a member")
            for ident in identifiers:
                if not isinstance(ident, dict) or len(ident) != 1:
                    raise _RejectError(
                        "INVALID_FORMAT",
                        "a user identifier holds exactly one of emailAddress, phoneNumber, address",
                    )
                ((key, value),) = ident.items()
                if key in ("emailAddress", "phoneNumber"):
                    values.setdefault(key, []).append(self._digest(value, encoding, key))
                elif key == "address":
                    values.update(self._address(value, encoding))
                else:
                    raise _RejectError("INVALID_FORMAT", f"unknown user identifier {key}")
        elif kind == "mobileData":
            ids = (member["mobileData"] or {}).get("mobileIds")
            if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_MOBILE_IDS:
                raise _RejectError("INVALID_MOBILE_ID_FORMAT", "mobileIds must hold 1 to 10 ids")
            if not all(isinstance(i, str) and _MOBILE.fullmatch(i) for i in ids):
                raise _RejectError("INVALID_MOBILE_ID_FORMAT", "mobile ids must be IDFA/AAID")
            values["mobileIds"] = list(ids)
        elif kind == "userIdData":
            user_id = (member["userIdData"] or {}).get("userId")
            if not isinstance(user_id, str) or not user_id:
                raise _RejectError("REQUIRED_FIELD_MISSING", "userIdData.userId is required")
            values["userId"] = [user_id]
        else:
            raise _RejectError("INVALID_AUDIENCE_MEMBER", f"{kind} is for data partners only")
        if any(v in self.reject_values for vals in values.values() for v in vals):
            raise _RejectError("INVALID_AUDIENCE_MEMBER", "This audience member is not valid.")
        return kind, values

    def _address(self, address: Any, encoding: str) -> dict[str, list[str]]:
        if not isinstance(address, dict):
            raise _RejectError("INVALID_FORMAT", "address must be an object")
        missing = [k for k in ("givenName", "familyName", "regionCode", "postalCode") if not address.get(k)]
        if missing:
            raise _RejectError("REQUIRED_FIELD_MISSING", f"address needs {missing}")
        region = str(address["regionCode"])
        if _REGION.fullmatch(region) is None:
            raise _RejectError("INVALID_COUNTRY_CODE", "regionCode must be ISO-3166-1 alpha-2, not hashed")
        postal = str(address["postalCode"])
        if _HEX.fullmatch(postal) or len(postal) > 16:
            raise _RejectError("INVALID_POSTAL_CODE", "postalCode is sent unhashed")
        return {
            "givenName": [self._digest(address["givenName"], encoding, "givenName")],
            "familyName": [self._digest(address["familyName"], encoding, "familyName")],
            "regionCode": [region],
            "postalCode": [postal],
        }
