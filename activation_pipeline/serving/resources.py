"""The Profile API's answers, shaped as Segment's: traits, external ids, events, links and metadata.

Each function takes the request's query parameters and one version's rows and returns the JSON body, or
raises `ApiError` with Segment's status and error code.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from activation_pipeline.serving.layout import PROFILE_PREFIX
from activation_pipeline.serving.store import Document

TRAIT_CLASSES = {
    "custom_trait": "custom",
    "computed_trait": "computed",
    "sql_trait": "sql",
    "predictive_trait": "predictive",
    "audience": "audiences",
}
"""`class=` values: Segment documents `audience` and `computed_trait`; the others are ours."""


class ApiError(Exception):
    """An error answer: HTTP status, Segment error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(what: str = "Profile") -> ApiError:
    """Segment's 404 answer."""
    return ApiError(404, "not_found", f"{what} was not found.")


def invalid(message: str) -> ApiError:
    """Segment's 400 answer for a parameter that fails validation."""
    return ApiError(400, "validation_error", message)


class Page:
    """The request's path and query, to write the `cursor` of a list answer."""

    def __init__(self, path: str, query: Mapping[str, str], default_limit: int, max_limit: int) -> None:
        self.path, self.query = path, query
        self.limit = _limit(query.get("limit"), default_limit, max_limit)

    def cursor(self, next_value: str | None) -> dict[str, Any]:
        """`{url, has_more, next, limit}`: `url` fetches the next page when there is one."""
        if next_value is None:
            return {"url": self.path, "has_more": False, "next": "", "limit": self.limit}
        query = {k: v for k, v in self.query.items() if k != "next"} | {"next": next_value}
        return {
            "url": f"{self.path}?{urlencode(query)}",
            "has_more": True,
            "next": next_value,
            "limit": self.limit,
        }


def _limit(text: str | None, default: int, maximum: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise invalid(f"The parameter `limit` must be a whole number between 1 and {maximum}.")
    return int(text)


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "false").lower()
    if value not in ("true", "false"):
        raise invalid(f"The parameter `{name}` must be true or false.")
    return value == "true"


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit():
        raise invalid("The parameter `next` is not a cursor this list gave.")
    return int(cursor)


def _paged(items: Sequence[Any], page: Page) -> tuple[list[Any], dict[str, Any]]:
    start = _offset(page.query.get("next"))
    chunk = list(items[start : start + page.limit])
    more = start + page.limit < len(items)
    return chunk, page.cursor(str(start + page.limit) if more else None)


# ------------------------------------------------------------------------------------------------ traits


def _trait_values(doc: Mapping[str, Any], classes: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in classes:
        values.update({k: v for k, v in (doc.get(name) or {}).items() if v is not None})
    return values


def traits(doc: Mapping[str, Any], page: Page, as_of: datetime, columns: Sequence[str]) -> dict[str, Any]:
    """`{traits, cursor}`: traits by key order, filtered by `include` and `class`, paged by trait key."""
    wanted = page.query.get("class")
    if wanted is not None and wanted not in TRAIT_CLASSES:
        raise invalid(f"The parameter `class` must be one of {', '.join(sorted(TRAIT_CLASSES))}.")
    classes = [TRAIT_CLASSES[wanted]] if wanted else list(columns)
    values = _trait_values(doc, [c for c in classes if c in columns])
    include = _csv(page.query.get("include"))
    keys = sorted(k for k in values if include is None or k in include)
    start = page.query.get("next")
    if start:
        keys = [k for k in keys if k >= start]
    shown, rest = keys[: page.limit], keys[page.limit :]
    verbose = _flag(page.query, "verbose")
    updated = _iso(as_of)
    body = {
        k: {"value": values[k], "source_id": None, "updated_at": updated} if verbose else values[k]
        for k in shown
    }
    return {"traits": body, "cursor": page.cursor(rest[0] if rest else None)}


USER_TRAIT_CLASSES = ("custom", "computed", "sql", "predictive", "audiences")
ACCOUNT_TRAIT_CLASSES = ("custom", "computed", "sql")


# ------------------------------------------------------------------------------------------ external ids


def external_id(entry: Mapping[str, Any], collection: str) -> dict[str, Any]:
    """One external id in Segment's shape."""
    return {
        "source_id": None,
        "collection": collection,
        "id": entry["id"],
        "type": entry["type"],
        "created_at": entry["created_at"],
        "encoding": "none",
        "first_message_id": None,
    }


def profile_external_ids(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A profile's external ids, oldest first."""
    entries = sorted(doc.get("external_ids") or [], key=lambda e: (e["created_at"], e["type"], e["id"]))
    return [external_id(e, "users") for e in entries]


def external_ids(ids: Sequence[dict[str, Any]], page: Page) -> dict[str, Any]:
    """`{data, cursor}`: external ids filtered by `include` (identifier types), paged."""
    include = _csv(page.query.get("include"))
    chosen = [e for e in ids if include is None or e["type"] in include]
    data, cursor = _paged(chosen, page)
    return {"data": data, "cursor": cursor}


def account_external_ids(account: Document) -> list[dict[str, Any]]:
    """An account's one external id: its group id."""
    entry = {"id": account.id, "type": "group_id", "created_at": account.doc.get("created_at")}
    return [external_id(entry, "accounts")]


# ------------------------------------------------------------------------------------------------ links


def user_links(doc: Mapping[str, Any], page: Page) -> dict[str, Any]:
    """`{data, cursor}`: the accounts a user belongs to."""
    accounts = sorted(doc.get("accounts") or [], key=lambda a: (a["created_at"], a["group_id"]))
    links = [
        {
            "to_collection": "accounts",
            "external_ids": [
                external_id(
                    {"id": a["group_id"], "type": "group_id", "created_at": a["created_at"]}, "accounts"
                )
            ],
        }
        for a in accounts
    ]
    data, cursor = _paged(links, page)
    return {"data": data, "cursor": cursor}


def account_links(
    account: Document, page: Page, load: Callable[[list[int]], list[Document]]
) -> dict[str, Any]:
    """`{data, cursor}`: an account's users, each with its external ids (loaded for this page only)."""
    users = sorted(account.doc.get("users") or [], key=lambda u: (u["created_at"], u["profile_id"]))
    chunk, cursor = _paged(users, page)
    found = {d.id: d.doc for d in load([int(u["profile_id"]) for u in chunk])}
    data = [
        {"to_collection": "users", "external_ids": profile_external_ids(found[int(u["profile_id"])])}
        for u in chunk
        if int(u["profile_id"]) in found
    ]
    return {"data": data, "cursor": cursor}


# ------------------------------------------------------------------------------------------------ events


def _moment(query: Mapping[str, str], name: str) -> datetime | None:
    text = query.get(name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise invalid(f"The parameter `{name}` must be an ISO-8601 time.") from error
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _event_cursor(row: Any) -> str:
    return base64.urlsafe_b64encode(f"{row.timestamp.isoformat()}|{row.message_id}".encode()).decode()


def _after(text: str) -> tuple[datetime, str]:
    try:
        moment, message_id = base64.urlsafe_b64decode(text.encode()).decode().split("|", 1)
        return datetime.fromisoformat(moment), message_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise invalid("The parameter `next` is not a cursor this list gave.") from error


def _beyond(key: tuple[datetime, str], cursor: tuple[datetime, str], descending: bool) -> bool:
    return key < cursor if descending else key > cursor


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _event(row: Any) -> dict[str, Any]:
    ids = [
        {"collection": "users", "type": kind, "id": value, "encoding": "none"}
        for kind, value in (("user_id", row.user_id), ("anonymous_id", row.anonymous_id))
        if value
    ]
    body: dict[str, Any] = {
        "external_ids": ids,
        "context": _json(row.context) or {},
        "type": row.type,
        "message_id": row.message_id,
        "source_id": None,
        "timestamp": _iso(row.timestamp),
        "properties": _json(row.properties) or {},
        "event": row.event,
        "related": {"users": f"{PROFILE_PREFIX}{row.profile_id}"},
    }
    if row.type in ("identify", "group"):
        body["traits"] = _json(row.traits) or {}
    if row.group_id:
        body["group_id"] = row.group_id
    return body


def events(rows: Sequence[Any], page: Page) -> dict[str, Any]:
    """`{data, cursor}`: a profile's recent events filtered by start, end, include, exclude; by time."""
    q = page.query
    sort = q.get("sort", "desc")
    if sort not in ("asc", "desc"):
        raise invalid("The parameter `sort` must be asc or desc.")
    start, end = _moment(q, "start"), _moment(q, "end")
    include, exclude = _csv(q.get("include")), set(_csv(q.get("exclude")) or ())
    after = _after(q["next"]) if q.get("next") else None
    descending = sort == "desc"
    chosen = sorted(
        (
            r
            for r in rows
            if (start is None or r.timestamp > start)
            and (end is None or r.timestamp < end)
            and (include is None or r.event in include)
            and r.event not in exclude
            and (after is None or _beyond((r.timestamp, r.message_id), after, descending))
        ),
        key=lambda r: (r.timestamp, r.message_id),
        reverse=descending,
    )
    shown = chosen[: page.limit]
    more = len(chosen) > page.limit
    return {
        "data": [_event(r) for r in shown],
        "cursor": page.cursor(_event_cursor(shown[-1]) if more else None),
    }


# ---------------------------------------------------------------------------------------------- metadata


def metadata(created_at: str | None, updated_at: str | None) -> dict[str, Any]:
    """`{metadata}` as Segment answers it (message and source ids are not kept here: null)."""
    return {
        "metadata": {
            "created_at": created_at,
            "updated_at": updated_at,
            "expires_at": None,
            "first_message_id": None,
            "first_source_id": None,
            "last_message_id": None,
            "last_source_id": None,
        }
    }
