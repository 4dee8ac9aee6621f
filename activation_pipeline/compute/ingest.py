"""Parse and validate Segment-spec messages into typed event rows; unusable ones go to quarantine with a reason."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from activation_pipeline.config import Workspace
from activation_pipeline.identifiers import canonical_phone

MESSAGE_TYPES = frozenset({"identify", "track", "group", "alias", "page", "screen"})
PREVIOUS_ID = "previous_id"
"""Pseudo identifier type of an alias call's previousId: resolved to user_id or anonymous_id at merge time."""

EVENT_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("type", pa.string()),
        ("event", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("group_id", pa.string()),
        ("previous_id", pa.string()),
        ("timestamp", pa.timestamp("us")),
        ("received_at", pa.timestamp("us")),
        ("day", pa.date32()),
        ("batch", pa.int64()),
        ("set_hash", pa.int64()),
        ("ids", pa.string()),
        ("traits", pa.string()),
        ("properties", pa.string()),
        ("context", pa.string()),
    ]
)
SET_KEYS_SCHEMA = pa.schema(
    [("set_hash", pa.int64()), ("pos", pa.int32()), ("identifier_type", pa.string()), ("value", pa.string())]
)
QUARANTINE_SCHEMA = pa.schema(
    [
        ("day", pa.date32()),
        ("source", pa.string()),
        ("line", pa.int64()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


class MessageRejectedError(ValueError):
    """A message that cannot be used, with the reason kept in quarantine."""


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 text or a datetime as naive UTC; None when it is neither."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def set_hash(ids_json: str) -> int:
    """A stable signed 64-bit hash of an identifier set's canonical JSON."""
    return int.from_bytes(
        hashlib.blake2b(ids_json.encode("utf-8"), digest_size=8).digest(), "big", signed=True
    )


normalise_phone = canonical_phone
"""Kept for callers of ingest: the canonical phone form lives in `activation_pipeline.identifiers`."""


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


class IdentifierExtractor:
    """Reads a message's identifiers (per the workspace's identity settings), normalised for matching."""

    def __init__(self, workspace: Workspace) -> None:
        """Prepare extractors for the declared identifiers in priority order."""
        self.order = workspace.identity.priority_order()
        self.identifiers = workspace.identity.identifiers
        self.region = workspace.normalisation.default_region

    def _trait(self, msg: Mapping[str, Any], path: str) -> Any:
        keys = path.split(".")
        if msg.get("type") == "identify":
            found = _get(msg.get("traits"), *keys)
            if found is not None:
                return found
        return _get(msg.get("context"), "traits", *keys)

    def _value(self, name: str, msg: Mapping[str, Any]) -> str | None:
        if name == "user_id":
            return _text(msg.get("userId"))
        if name == "anonymous_id":
            return _text(msg.get("anonymousId"))
        if name == "email":
            email = _text(self._trait(msg, "email"))
            return email.lower() if email else None
        if name == "phone":
            phone = _text(self._trait(msg, "phone"))
            return normalise_phone(phone, self.region) if phone else None
        if name in ("ios.idfa", "android.id"):
            device = _get(msg.get("context"), "device")
            kind = _text(_get(device, "type"))
            wanted = "ios" if name == "ios.idfa" else "android"
            if kind is not None and kind.lower() == wanted:
                return _text(_get(device, "advertisingId"))
            return None
        settings = self.identifiers[name]
        return _text(self._trait(msg, settings.trait or name))

    def extract(self, msg: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The message's (identifier type, normalised value) pairs, most trusted first, without duplicates."""
        found: list[tuple[str, str]] = []
        for name in self.order:
            value = self._value(name, msg)
            if value is not None and (name, value) not in found:
                found.append((name, value))
        if msg.get("type") == "alias":
            previous = _text(msg.get("previousId"))
            if previous is not None and not any(v == previous for _, v in found):
                found.append((PREVIOUS_ID, previous))
        return found


def _object(msg: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = msg.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MessageRejectedError(f"{key} is not an object")
    return dict(value)


def validate(msg: Any, extractor: IdentifierExtractor) -> dict[str, Any]:
    """Turn one decoded message into an event row (without day/batch), raising MessageRejectedError with the reason."""
    if not isinstance(msg, Mapping):
        raise MessageRejectedError("not a JSON object")
    kind = msg.get("type")
    if not isinstance(kind, str) or not kind:
        raise MessageRejectedError("no type")
    if kind not in MESSAGE_TYPES:
        raise MessageRejectedError(f"unknown type '{kind[:40]}'")
    user_id, anonymous_id = _text(msg.get("userId")), _text(msg.get("anonymousId"))
    if user_id is None and anonymous_id is None:
        raise MessageRejectedError("no userId or anonymousId")
    event = msg.get("event") if kind == "track" else msg.get("name")
    if kind == "track" and (not isinstance(event, str) or not event.strip()):
        raise MessageRejectedError("track without event")
    group_id = _text(msg.get("groupId"))
    if kind == "group" and group_id is None:
        raise MessageRejectedError("group without groupId")
    previous_id = _text(msg.get("previousId"))
    if kind == "alias" and previous_id is None:
        raise MessageRejectedError("alias without previousId")
    raw_time = msg.get("timestamp")
    if raw_time is None:
        raw_time = msg.get("originalTimestamp", msg.get("receivedAt"))
    if raw_time is None:
        raise MessageRejectedError("no timestamp")
    timestamp = parse_time(raw_time)
    if timestamp is None:
        raise MessageRejectedError("timestamp not ISO-8601")
    traits = _object(msg, "traits")
    properties = _object(msg, "properties")
    context = _object(msg, "context")
    ids = extractor.extract(msg)
    ids_json = _dumps([list(pair) for pair in ids]) if ids else None
    message_id = _text(msg.get("messageId"))
    return {
        "message_id": message_id,
        "type": kind,
        "event": event.strip() if isinstance(event, str) else None,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "group_id": group_id,
        "previous_id": previous_id,
        "timestamp": timestamp,
        "received_at": parse_time(msg.get("receivedAt")),
        "set_hash": set_hash(ids_json) if ids_json else None,
        "ids": ids_json,
        "traits": _dumps(traits),
        "properties": _dumps(properties),
        "context": _dumps(context),
    }


@dataclass
class ParsedBatch:
    """Event rows and quarantined lines parsed from one source."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    _seen: set[str] = field(default_factory=set)

    def add(
        self,
        raw: str,
        decoded: Any,
        source: str,
        line: int,
        extractor: IdentifierExtractor,
        day: date | None,
        error: str | None = None,
    ) -> None:
        """Validate one message; keep it as a row, count it as a duplicate, or quarantine it."""
        try:
            if error is not None:
                raise MessageRejectedError(error)
            row = validate(decoded, extractor)
        except MessageRejectedError as rejected:
            self.quarantine.append(
                {"day": day, "source": source, "line": line, "reason": str(rejected), "raw": raw}
            )
            return
        if row["message_id"] is None:
            row["message_id"] = "gen-" + hashlib.md5(raw.encode("utf-8"), usedforsecurity=False).hexdigest()
        if row["message_id"] in self._seen:
            self.duplicates += 1
            return
        self._seen.add(row["message_id"])
        row["day"] = day if day is not None else row["timestamp"].date()
        self.rows.append(row)

    def add_lines(
        self, lines: Iterable[str], source: str, extractor: IdentifierExtractor, day: date | None
    ) -> None:
        """Parse JSON lines (blank lines are skipped)."""
        for number, raw in enumerate(lines, start=1):
            text = raw.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                decoded = json.loads(text)
            except ValueError:
                self.add(text, None, source, number, extractor, day, "not valid JSON")
                continue
            self.add(text, decoded, source, number, extractor, day)

    def event_table(self, batch: int) -> pa.Table:
        """The valid rows as an Arrow table, stamped with the landing batch."""
        columns: dict[str, list[Any]] = {name: [] for name in EVENT_SCHEMA.names}
        for row in self.rows:
            for name in EVENT_SCHEMA.names:
                columns[name].append(batch if name == "batch" else row.get(name))
        return pa.table(columns, schema=EVENT_SCHEMA)

    def set_keys_table(self) -> pa.Table:
        """The identifiers of each distinct identifier set in this batch (set_hash, pos, type, value)."""
        hashes, positions, kinds, values = [], [], [], []
        seen: set[int] = set()
        for row in self.rows:
            digest = row["set_hash"]
            if digest is None or digest in seen:
                continue
            seen.add(digest)
            for pos, (kind, value) in enumerate(json.loads(row["ids"])):
                hashes.append(digest)
                positions.append(pos)
                kinds.append(kind)
                values.append(value)
        return pa.table(
            {"set_hash": hashes, "pos": positions, "identifier_type": kinds, "value": values},
            schema=SET_KEYS_SCHEMA,
        )

    def quarantine_table(self) -> pa.Table:
        """The quarantined lines as an Arrow table."""
        columns: dict[str, list[Any]] = {
            name: [q[name] for q in self.quarantine] for name in QUARANTINE_SCHEMA.names
        }
        return pa.table(columns, schema=QUARANTINE_SCHEMA)

    def content_hash(self) -> str:
        """A digest of what this batch would land (to make re-landing identical data a no-op)."""
        digest = hashlib.sha256()
        for row in self.rows:
            digest.update(
                f"{row['message_id']}\x1f{row['timestamp'].isoformat()}\x1f{row['ids']}\x1f{row['type']}"
                f"\x1f{row['event']}\x1f{row['traits']}\x1f{row['properties']}\x1f{row['group_id']}\n".encode()
            )
        for q in self.quarantine:
            digest.update(f"q\x1f{q['source']}\x1f{q['line']}\x1f{q['reason']}\n".encode())
        return digest.hexdigest()


def reasons(batch: ParsedBatch) -> dict[str, int]:
    """Quarantined line counts by reason."""
    counts: dict[str, int] = {}
    for q in batch.quarantine:
        counts[q["reason"]] = counts.get(q["reason"], 0) + 1
    return dict(sorted(counts.items()))
