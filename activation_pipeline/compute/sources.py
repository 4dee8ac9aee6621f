"""Read Segment-spec messages from files (JSONL, gzip, Parquet) or a warehouse in Segment's layout.

Every reader yields raw message texts (`ingest.RAW_SCHEMA`: source, line, raw) for the parser; nothing here
decides what is valid. Files are found anywhere under the source path (dated or undated names, nested date
folders such as Segment's `<source-id>/<date>/<file>.gz` archive layout; not those hidden by a leading `.` or `_`)
and known by their relative path, size and SHA-256 content hash.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from io import BufferedIOBase
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from activation_pipeline.compute.ingest import RAW_SCHEMA
from activation_pipeline.compute.sqlutil import table_columns, table_names
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import FileEventsSource, WarehouseEventsSource
from activation_pipeline.config.secrets import SecretRef
from activation_pipeline.errors import ComputeError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet",)
GZIP_SUFFIX = ".gz"
CHUNK_BYTES = 64 * 1024 * 1024
"""JSONL files are read in blocks of about this size, so memory does not grow with the file."""
PARQUET_ROWS = 500_000
UTF8_BOM = b"\xef\xbb\xbf"

PARQUET_ALIASES = {
    "message_id": "messageId",
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "group_id": "groupId",
    "previous_id": "previousId",
    "original_timestamp": "originalTimestamp",
    "received_at": "receivedAt",
    "sent_at": "sentAt",
}
"""Parquet columns may use Segment's camelCase names or these snake_case ones."""
NESTED_FIELDS = ("traits", "properties", "context", "integrations")


class UnreadableFileError(ComputeError, ValueError):
    """An event file cannot be read: a gzip stream cut short or corrupt, a file that is not Parquet, ..."""

    def __init__(self, name: str, reason: str) -> None:
        """The file's name under the source path, and why it cannot be read."""
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


def _unreadable(name: str, error: Exception) -> UnreadableFileError:
    if isinstance(error, EOFError):
        return UnreadableFileError(
            name, "the gzip stream ends early (the file is cut short, or still being written)"
        )
    if isinstance(error, gzip.BadGzipFile | zlib.error):
        return UnreadableFileError(name, f"not valid gzip ({error})")
    if isinstance(error, duckdb.Error):
        return UnreadableFileError(name, f"not a readable Parquet file ({str(error).splitlines()[0]})")
    return UnreadableFileError(name, f"cannot be read ({error})")


READ_ERRORS = (OSError, EOFError, zlib.error)


@dataclass(frozen=True)
class SourceFile:
    """One event file: where it is, its name relative to the source path, its size and modification time."""

    path: Path
    name: str
    size: int
    mtime_ns: int = 0

    @property
    def is_parquet(self) -> bool:
        """True for Parquet files (read whole; never appended to)."""
        return self.name.lower().endswith(PARQUET_SUFFIXES)

    @property
    def is_gzip(self) -> bool:
        """True for gzip-compressed JSONL."""
        return self.name.lower().endswith(GZIP_SUFFIX)


@dataclass(frozen=True)
class FileDigest:
    """A file's content hash, the hash of its first `prefix_size` bytes, and whether it ends a line."""

    content_hash: str
    prefix_hash: str | None
    complete: bool


def _suffixes(source: FileEventsSource) -> tuple[str, ...]:
    kinds = ("jsonl", "parquet") if source.format == "auto" else (source.format,)
    plain = tuple(s for kind in kinds for s in (JSONL_SUFFIXES if kind == "jsonl" else PARQUET_SUFFIXES))
    # Segment's archives name their gzip JSONL files `<timestamp>.<id>.gz`: any .gz is taken as JSONL.
    return plain + ((GZIP_SUFFIX,) if "jsonl" in kinds else ())


def event_files(workspace: Workspace) -> list[SourceFile]:
    """The event files of a file source (any depth), sorted by relative path."""
    source = workspace.sources.events
    assert isinstance(source, FileEventsSource)
    root = workspace.resolve_path(source.path)
    suffixes = _suffixes(source)
    if root.is_file():
        return [_source_file(root, root.name)]
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.rglob("*")
        if p.is_file() and p.name.lower().endswith(suffixes) and not _hidden(p.relative_to(root))
    ]
    return sorted((_source_file(p, p.relative_to(root).as_posix()) for p in found), key=lambda f: f.name)


def _hidden(relative: Path) -> bool:
    """True for a name or folder starting with `.` or `_`, as Hadoop and Spark hide them.

    Spark writes files in progress under `_temporary/`, and macOS copies leave `._<name>` resource files.
    """
    return any(part.startswith((".", "_")) for part in relative.parts)


def _source_file(path: Path, name: str) -> SourceFile:
    stat = path.stat()
    return SourceFile(path, name, stat.st_size, stat.st_mtime_ns)


def file_digest(file: SourceFile, prefix_size: int | None) -> FileDigest:
    """SHA-256 of the file as listed (`file.size` bytes), of its first `prefix_size` bytes, and its last byte."""
    with file.path.open("rb") as handle:
        return _Hashing(handle, file.size, prefix_size).finish()


_BLANK_CANDIDATE = np.zeros(256, bool)
_BLANK_CANDIDATE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_BLANK_CANDIDATE[0x80:] = True  # a multi-byte character may be Unicode whitespace (U+00A0, U+3000, ...)


def _lines(data: bytes | memoryview) -> tuple[pa.Array, np.ndarray]:
    """The lines of a block of whole lines (the last may lack its newline), and which are not blank.

    A line keeps its own line ending (JSON ignores it; the parser drops it where a line's text is kept), so
    each string is a slice of the block as read, with no copy and no Python string per line. Arrow's own check
    finds bytes that are not UTF-8; such a block is decoded with replacement characters, as a text editor would
    show it (the line is then quarantined as not valid JSON, not lost).
    """
    block = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(block == ord("\n")) + 1
    if len(block) and block[-1] != ord("\n"):
        ends = np.append(ends, len(block))
    offsets = np.concatenate(([0], ends)).astype(np.int32)
    lines = pa.StringArray.from_buffers(len(ends), pa.py_buffer(offsets), pa.py_buffer(data))
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:
        texts = bytes(data).decode("utf-8", errors="replace").split("\n")
        if bytes(data[-1:]) == b"\n":
            texts.pop()  # the empty piece after the last newline is not a line
        lines = pa.array([t + "\n" for t in texts], pa.string())
        offsets, block = _layout(lines)
    # A NUL byte (rare) is never valid JSON, and PostgreSQL cannot store it in the quarantine's text.
    if not block.all():
        lines = pc.replace_substring(lines, "\x00", "\ufffd")
        offsets, block = _layout(lines)
    return lines, _not_blank(lines, block, offsets)


def _layout(lines: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets and bytes of a fresh string array (offset 0)."""
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[: len(lines) + 1]
    return offsets, np.frombuffer(lines.buffers()[2], np.uint8)[: offsets[-1]]


def _not_blank(lines: pa.Array, block: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Which lines hold more than whitespace: only lines starting with a space-like byte are looked at closely.

    Every line holds at least one byte (its line ending, or the last line's text).
    """
    doubtful = _BLANK_CANDIDATE[block[offsets[:-1]]]
    keep = ~doubtful
    if doubtful.any():
        rows = np.flatnonzero(doubtful)
        trimmed = pc.utf8_trim_whitespace(lines.take(pa.array(rows)))
        keep[rows] = pc.greater(pc.utf8_length(trimmed), 0).to_numpy(zero_copy_only=False)
    return keep


def _raw_table(source: str, numbers: Any, texts: Any) -> pa.Table:
    sources = pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(texts), np.int32)), pa.array([source]))
    return pa.table({"source": sources.cast(pa.string()), "line": numbers, "raw": texts}, schema=RAW_SCHEMA)


class JsonlReader:
    """The messages of a JSONL file (plain or gzip) from byte `offset`, numbered from `first_line`.

    Iterate it for the raw chunks; afterwards `last_line` is the number of the file's last line (blank lines
    and a last line without newline count), where the numbering of a later append goes on.
    """

    def __init__(self, file: SourceFile, offset: int = 0, first_line: int = 1) -> None:
        """Prepare to read `file` from `offset`."""
        self.file = file
        self.offset = offset
        self.last_line = first_line - 1
        self.digest: FileDigest | None = None
        """After reading a whole file (offset 0): its digest, of the bytes read (`file.size` of them)."""

    def __iter__(self) -> Iterator[pa.Table]:
        """Raw message chunks of about CHUNK_BYTES each (UnreadableFileError when the file cannot be read)."""
        try:
            yield from self._read()
        except READ_ERRORS as error:
            raise _unreadable(self.file.name, error) from error

    def _read(self) -> Iterator[pa.Table]:
        with self.file.path.open("rb") as opened:
            opened.seek(self.offset)
            # A whole file is hashed as it is read (one pass, and the hash is of exactly what was landed).
            handle: Any = _Hashing(opened, self.file.size) if self.offset == 0 else opened
            if self.file.is_gzip:
                with gzip.GzipFile(fileobj=handle) as unzipped:
                    yield from self._chunks(unzipped)
            else:
                yield from self._chunks(handle)
            if isinstance(handle, _Hashing):
                self.digest = handle.finish()

    def _chunks(self, handle: BufferedIOBase) -> Iterator[pa.Table]:
        tail = b""
        first = self.offset == 0
        while True:
            block = handle.read(CHUNK_BYTES)
            # Editors on Windows write a byte-order mark; it is not part of the first line.
            if first and block.startswith(UTF8_BOM):
                block = block[len(UTF8_BOM) :]
            first = False
            joined = tail + block
            cut = joined.rfind(b"\n") + 1 if block else len(joined)
            data, tail = memoryview(joined)[:cut], joined[cut:]  # the block is not copied again
            if data:
                chunk = self._numbered(*_lines(data))
                if chunk.num_rows:
                    yield chunk
            if not block:
                return

    def _numbered(self, texts: pa.Array, keep: np.ndarray) -> pa.Table:
        """The non-blank lines with their numbers (blank lines are counted, not kept)."""
        numbers = np.arange(self.last_line + 1, self.last_line + 1 + len(texts), dtype=np.int64)
        self.last_line += len(texts)
        if keep.all():
            return _raw_table(self.file.name, pa.array(numbers), texts)
        mask = pa.array(keep)
        return _raw_table(self.file.name, pa.array(numbers[keep]), pc.filter(texts, mask))


class _Hashing:
    """A binary file read through SHA-256, up to `size` bytes (a file growing meanwhile is read as it was).

    With `prefix_size`, the hash of that many first bytes too (to recognise an append).
    """

    def __init__(self, handle: BufferedIOBase, size: int, prefix_size: int | None = None) -> None:
        self.handle, self.left = handle, size
        self.sha = hashlib.sha256()
        self.prefix_left = prefix_size
        self.prefix_hash = self.sha.hexdigest() if prefix_size == 0 else None
        self.last = b""
        self.mode = "rb"

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative), hashed."""
        size = self.left if size is None or size < 0 else min(size, self.left)
        block = self.handle.read(size) if size else b""
        self.left -= len(block)
        if self.prefix_left and len(block) >= self.prefix_left:
            self.sha.update(block[: self.prefix_left])
            self.prefix_hash = self.sha.hexdigest()
            self.sha.update(block[self.prefix_left :])
        else:
            self.sha.update(block)
        if self.prefix_left:
            self.prefix_left = max(self.prefix_left - len(block), 0)
        self.last = block[-1:] or self.last
        return block

    def finish(self) -> FileDigest:
        """The digest of every byte (what a reader such as gzip left unread is read too)."""
        while self.read(8 * 1024 * 1024):
            pass
        return FileDigest(self.sha.hexdigest(), self.prefix_hash, self.last in (b"", b"\n"))


def read_parquet(file: SourceFile) -> Iterator[pa.Table]:
    """The rows of a Parquet file as message texts (nested fields as structs or JSON strings), numbered.

    Read in slices of PARQUET_ROWS rows, so memory does not grow with the file (UnreadableFileError when it
    cannot be read).
    """
    try:
        yield from _parquet_rows(file)
    except (duckdb.Error, OSError) as error:
        raise _unreadable(file.name, error) from error


def _parquet_rows(file: SourceFile) -> Iterator[pa.Table]:
    db = duckdb.connect()
    try:
        db.execute("SET TimeZone = 'UTC'")
        params = {"path": str(file.path)}
        schema = db.sql("DESCRIBE SELECT * FROM read_parquet($path)", params=params).fetchall()
        [(total,)] = db.sql("SELECT count(*) FROM read_parquet($path)", params=params).fetchall()
        fields = []
        for name, column_type, *_ in schema:
            key = PARQUET_ALIASES.get(name, name)
            column = _quote_key(name)
            if key in NESTED_FIELDS and column_type == "VARCHAR":
                # JSON written as text: keep it as JSON (text that is not JSON stays a string, and is refused).
                column = f"CASE WHEN json_valid({column}) THEN json({column}) ELSE to_json({column}) END"
            fields.append(f"{_quote_key(key)} := {column}")
        query = (
            f"SELECT file_row_number + 1 AS line, to_json(struct_pack({', '.join(fields)}))::VARCHAR AS raw "  # noqa: S608 (quoted column names)
            "FROM read_parquet($path, file_row_number = true) "
            "WHERE file_row_number >= $start AND file_row_number < $end ORDER BY file_row_number"
        )
        for start in range(0, int(total), PARQUET_ROWS):
            rows = db.sql(
                query, params={**params, "start": start, "end": start + PARQUET_ROWS}
            ).to_arrow_table()
            yield pa.table(
                {
                    "source": [file.name] * rows.num_rows,
                    "line": rows.column("line"),
                    "raw": rows.column("raw"),
                },
                schema=RAW_SCHEMA,
            )
    finally:
        db.close()


def _quote_key(key: str) -> str:
    return '"' + key.replace('"', '""') + '"'


# ------------------------------------------------------------------------------------------ warehouse


def segment_table_name(event: str) -> str:
    """The warehouse table name Segment gives a track event (`Order Completed` -> `order_completed`)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", event.strip())
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return text or "_"


WAREHOUSE_TABLES = (
    ("identifies", "identify"),
    ("groups", "group"),
    ("aliases", "alias"),
    ("tracks", "track"),
)
_WAREHOUSE_META = frozenset(
    {
        "id", "received_at", "sent_at", "timestamp", "original_timestamp", "uuid_ts", "loaded_at", "user_id",
        "anonymous_id", "event", "event_text", "group_id", "previous_id", "channel", "context_library_name",
        "context_library_version",
    }
)  # fmt: skip
IN_CHUNK = 5_000
WATERMARK = "_activation_watermark"


def warehouse_engine(source: WarehouseEventsSource) -> sa.Engine:
    """A short-lived engine on the events warehouse."""
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


def _reflect(conn: sa.Connection, schema: str, name: str) -> sa.TableClause:
    return sa.table(name, *[sa.column(c) for c in table_columns(conn, schema, name)], schema=schema)


def watermark_column(table: sa.TableClause) -> sa.ColumnElement[Any]:
    """What new rows are found by: `received_at` (Segment's load order), else `timestamp`."""
    if "received_at" in table.c:
        return sa.func.coalesce(table.c.received_at, table.c.timestamp)
    return table.c.timestamp


def _event_properties(
    conn: sa.Connection, schema: str, names: set[str], rows: list[dict[str, Any]]
) -> dict[Any, dict[str, Any]]:
    """The per-event table rows (Segment's one table per track event) of these track rows, by id."""
    extras: dict[Any, dict[str, Any]] = {}
    by_table: dict[str, list[Any]] = {}
    for row in rows:
        name = segment_table_name(str(row.get("event_text") or row.get("event")))
        if name in names and name not in {t for t, _ in WAREHOUSE_TABLES}:
            by_table.setdefault(name, []).append(row.get("id"))
    for name, ids in sorted(by_table.items()):
        table = _reflect(conn, schema, name)
        for start in range(0, len(ids), IN_CHUNK):
            query = sa.select(table).where(table.c.id.in_(ids[start : start + IN_CHUNK]))
            extras.update({r._mapping["id"]: dict(r._mapping) for r in conn.execute(query)})
    return extras


def read_warehouse(
    workspace: Workspace, watermarks: Mapping[str, datetime | None]
) -> Iterator[tuple[str, pa.Table, datetime | None]]:
    """Per Segment table: its rows past the watermark as message texts, and the new watermark."""
    source = workspace.sources.events
    assert isinstance(source, WarehouseEventsSource)
    engine = warehouse_engine(source)
    try:
        with engine.connect() as conn:
            names = table_names(conn, source.schema_)
            for table_name, kind in WAREHOUSE_TABLES:
                if table_name not in names:
                    continue
                unit = f"{source.schema_}.{table_name}"
                table = _reflect(conn, source.schema_, table_name)
                mark = watermark_column(table)
                query = sa.select(table, mark.label(WATERMARK)).order_by(mark, table.c.id)
                previous = watermarks.get(unit)
                if previous is not None:
                    query = query.where(mark > previous)
                rows = [dict(r._mapping) for r in conn.execute(query)]
                marks = [row.pop(WATERMARK) for row in rows]
                extras = _event_properties(conn, source.schema_, names, rows) if kind == "track" else {}
                texts = [
                    json.dumps(_row_message(kind, row, extras.get(row.get("id"))), default=str)
                    for row in rows
                ]
                newest = max((m for m in marks if m is not None), default=previous)
                yield unit, _raw_table(unit, list(range(1, len(texts) + 1)), texts), newest
    finally:
        engine.dispose()
