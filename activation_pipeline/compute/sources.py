"""Read one day of Segment-spec messages from files (JSONL or Parquet) or a warehouse in Segment's layout."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa

from activation_pipeline.compute.ingest import IdentifierExtractor, ParsedBatch
from activation_pipeline.compute.sqlutil import table_columns, table_names
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import FileEventsSource, WarehouseEventsSource
from activation_pipeline.config.secrets import SecretRef

_DATED = re.compile(r"^(\d{4}-\d{2}-\d{2})")
_FILE_SUFFIXES = {"jsonl": (".jsonl", ".ndjson", ".json"), "parquet": (".parquet",)}
_WAREHOUSE_META = frozenset(
    {
        "id",
        "received_at",
        "sent_at",
        "timestamp",
        "original_timestamp",
        "uuid_ts",
        "loaded_at",
        "user_id",
        "anonymous_id",
        "event",
        "event_text",
        "group_id",
        "previous_id",
        "channel",
        "context_library_name",
        "context_library_version",
    }
)


def segment_table_name(event: str) -> str:
    """The warehouse table name Segment gives a track event (`Order Completed` -> `order_completed`)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", event.strip())
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return text or "_"


def _file_day(path: Path) -> date | None:
    match = _DATED.match(path.name)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def event_files(workspace: Workspace) -> list[Path]:
    """The event files of a file source, sorted by name."""
    source = workspace.sources.events
    assert isinstance(source, FileEventsSource)
    root = workspace.resolve_path(source.path)
    kinds = ("jsonl", "parquet") if source.format == "auto" else (source.format,)
    suffixes = tuple(s for kind in kinds for s in _FILE_SUFFIXES[kind])
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes))


def _parquet_messages(path: Path) -> Iterator[tuple[int, str, Any]]:
    table = pq.read_table(path)
    for number, row in enumerate(table.to_pylist(), start=1):
        message: dict[str, Any] = {}
        for key, value in row.items():
            if key in ("traits", "properties", "context") and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            if value is not None:
                message[key] = value
        yield number, json.dumps(message, default=str, ensure_ascii=False), message


def _read_file(
    path: Path, batch: ParsedBatch, extractor: IdentifierExtractor, day: date | None, source: str
) -> None:
    if path.name.lower().endswith(".parquet"):
        for number, raw, message in _parquet_messages(path):
            batch.add(raw, message, source, number, extractor, day)
    else:
        with path.open(encoding="utf-8", errors="replace") as handle:
            batch.add_lines(handle, source, extractor, day)


def source_days(workspace: Workspace) -> list[date]:
    """The days a source holds messages for (file names for dated files, timestamps otherwise)."""
    source = workspace.sources.events
    if isinstance(source, WarehouseEventsSource):
        return _warehouse_days(workspace, source)
    days: set[date] = set()
    extractor = IdentifierExtractor(workspace)
    for path in event_files(workspace):
        day = _file_day(path)
        if day is not None:
            days.add(day)
        else:
            batch = ParsedBatch()
            _read_file(path, batch, extractor, None, path.name)
            days.update(row["day"] for row in batch.rows)
    return sorted(days)


def read_day(workspace: Workspace, day: date) -> tuple[ParsedBatch, list[str]]:
    """Parse one day of messages; also return the undated sources whose unusable lines have no day."""
    source = workspace.sources.events
    extractor = IdentifierExtractor(workspace)
    if isinstance(source, WarehouseEventsSource):
        return _read_warehouse_day(workspace, source, day, extractor), []
    batch = ParsedBatch()
    undated: list[str] = []
    root = workspace.resolve_path(source.path)
    for path in event_files(workspace):
        name = str(path.relative_to(root)) if path != root else path.name
        file_day = _file_day(path)
        if file_day is not None:
            if file_day == day:
                _read_file(path, batch, extractor, day, name)
            continue
        undated.append(name)
        whole = ParsedBatch()
        _read_file(path, whole, extractor, None, name)
        batch.rows.extend(
            row for row in whole.rows if row["day"] == day and row["message_id"] not in batch._seen
        )
        batch._seen.update(row["message_id"] for row in whole.rows if row["day"] == day)
        batch.quarantine.extend(whole.quarantine)
    return batch, undated


# ------------------------------------------------------------------------------------------ warehouse


def _warehouse_engine(source: WarehouseEventsSource) -> sa.Engine:
    url = source.url.resolve("sources.events.url") if isinstance(source.url, SecretRef) else source.url
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat() if value.tzinfo else value.isoformat() + "Z"
    return value


def _warehouse_days(workspace: Workspace, source: WarehouseEventsSource) -> list[date]:
    engine = _warehouse_engine(source)
    days: set[date] = set()
    try:
        with engine.connect() as conn:
            names = table_names(conn, source.schema_)
            for name in ("identifies", "tracks", "groups", "aliases"):
                if name in names:
                    table = sa.table(name, sa.column("timestamp"), schema=source.schema_)
                    for (value,) in conn.execute(sa.select(sa.cast(table.c.timestamp, sa.Date)).distinct()):
                        if value is not None:
                            days.add(value if isinstance(value, date) else date.fromisoformat(str(value)))
    finally:
        engine.dispose()
    return sorted(days)


def _reflect(conn: sa.Connection, schema: str, name: str) -> sa.TableClause:
    return sa.table(name, *[sa.column(c) for c in table_columns(conn, schema, name)], schema=schema)


def _row_message(kind: str, row: Mapping[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": kind, "messageId": row.get("id")}
    for key, target in (("user_id", "userId"), ("anonymous_id", "anonymousId"), ("group_id", "groupId"),
                        ("previous_id", "previousId")):  # fmt: skip
        if row.get(key) is not None:
            message[target] = row[key]
    message["timestamp"] = _iso(row.get("timestamp"))
    if row.get("received_at") is not None:
        message["receivedAt"] = _iso(row.get("received_at"))
    context: dict[str, Any] = {}
    device = {
        k: row.get(f"context_device_{c}") for k, c in (("type", "type"), ("advertisingId", "advertising_id"))
    }
    if any(v is not None for v in device.values()):
        context["device"] = {k: v for k, v in device.items() if v is not None}
    email = row.get("context_traits_email")
    if email is not None:
        context["traits"] = {"email": email}
    if context:
        message["context"] = context
    loose = {
        k: _plain(v) for k, v in row.items() if k not in _WAREHOUSE_META and not k.startswith("context_")
    }
    if kind == "track":
        message["event"] = row.get("event_text") or row.get("event")
        props = {
            k: _plain(v)
            for k, v in (extra or {}).items()
            if k not in _WAREHOUSE_META and not k.startswith("context_")
        }
        message["properties"] = {k: v for k, v in props.items() if v is not None}
    elif kind in ("identify", "group"):
        message["traits"] = {k: v for k, v in loose.items() if v is not None}
    return message


def _read_warehouse_day(
    workspace: Workspace, source: WarehouseEventsSource, day: date, extractor: IdentifierExtractor
) -> ParsedBatch:
    batch = ParsedBatch()
    start = datetime.combine(day, time())
    end = start + timedelta(days=1)
    engine = _warehouse_engine(source)
    try:
        with engine.connect() as conn:
            names = table_names(conn, source.schema_)
            for table_name, kind in (
                ("identifies", "identify"),
                ("groups", "group"),
                ("aliases", "alias"),
                ("tracks", "track"),
            ):
                if table_name not in names:
                    continue
                table = _reflect(conn, source.schema_, table_name)
                query = (
                    sa.select(table)
                    .where(table.c.timestamp >= start, table.c.timestamp < end)
                    .order_by(table.c.timestamp)
                )
                rows = [dict(r._mapping) for r in conn.execute(query)]
                extras: dict[Any, dict[str, Any]] = {}
                if kind == "track":
                    for event in sorted({str(r.get("event_text") or r.get("event")) for r in rows}):
                        per_event = segment_table_name(event)
                        if per_event in names and per_event not in (
                            "tracks",
                            "identifies",
                            "groups",
                            "aliases",
                        ):
                            et = _reflect(conn, source.schema_, per_event)
                            q = sa.select(et).where(et.c.timestamp >= start, et.c.timestamp < end)
                            extras.update({r._mapping["id"]: dict(r._mapping) for r in conn.execute(q)})
                for number, row in enumerate(rows, start=1):
                    message = _row_message(kind, row, extras.get(row.get("id")))
                    raw = json.dumps(message, default=str, ensure_ascii=False)
                    batch.add(raw, message, f"{source.schema_}.{table_name}", number, extractor, day)
    finally:
        engine.dispose()
    return batch
