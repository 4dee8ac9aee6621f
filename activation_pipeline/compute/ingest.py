"""Parse Segment-spec messages with DuckDB: raw JSON texts in, typed event rows and quarantined lines out.

Every message is read by DuckDB's JSON functions, no Python per line: one `json_extract` parse reads every path the
parser uses (the top-level Segment fields and the nested paths the workspace uses); emails and phones get their
canonical form in Python once per distinct written value (`activation_pipeline.identifiers`), except ASCII emails,
which SQL's `lower` gives the same form. A message that cannot
be used is quarantined with the first reason that applies, in this order: not valid JSON, not a JSON object, a
hazard (nested too deep, a NaN or infinite number, a NUL character: `message_hazards`), no type, unknown type, no
userId or anonymousId, track without event, group without groupId, alias without previousId, no timestamp
(`timestamp`, else `originalTimestamp`, else `receivedAt`), timestamp not ISO-8601, timestamp out of range, traits
/ properties / context not an object. Identifiers are read per the workspace's identity settings and canonicalised
(emails trimmed and lowercased, phones in E.164 where they parse); the identifier set of a
message is its `set_hash`, and each set's text (`ids`, JSON, most trusted first) and keys are given once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.func import FunctionNullHandling, PythonUDFType
from duckdb.sqltypes import VARCHAR

from activation_pipeline.compute.event_columns import EventColumn
from activation_pipeline.compute.message_hazards import (
    ESCAPED_NUL,
    MAX_DEPTH,
    OBJECT_VALUE_PATTERN,
    SUSPECT_PATTERN,
    hazard,
)
from activation_pipeline.compute.schema import MESSAGE_HASH_SQL
from activation_pipeline.compute.sqlutil import json_pointer
from activation_pipeline.config import Workspace
from activation_pipeline.identifiers import canonical_email, canonical_phone

MESSAGE_TYPES = ("identify", "track", "group", "alias", "page", "screen")
PREVIOUS_ID = "previous_id"
"""Pseudo identifier type of an alias call's previousId: resolved to user_id or anonymous_id at merge time."""

RAW_SCHEMA = pa.schema([("source", pa.string()), ("line", pa.int64()), ("raw", pa.string())])
"""What a source hands to the parser: one message text per row (its line ending may be kept), and where it came from."""

# Python's str.strip() set (Unicode whitespace), so SQL trimming matches `activation_pipeline.identifiers`.
_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
_NESTED = ("traits", "properties", "context")
_WHITESPACE_CODES = "(" + ", ".join(str(ord(c)) for c in _WHITESPACE) + ")"


def _trimmed(text: str) -> str:
    """SQL: text without leading or trailing whitespace, as Python's str.strip(), NULL when that leaves ''.

    Most text needs neither: it is returned as it is, and only the rest is trimmed (half the cost per field).
    """
    return (
        f"CASE WHEN {text} = '' OR unicode({text}) IN {_WHITESPACE_CODES} "
        f"OR unicode(right({text}, 1)) IN {_WHITESPACE_CODES} "
        f"THEN nullif(trim({text}, {_lit(_WHITESPACE)}), '') ELSE {text} END"
    )


def _lit(text: str) -> str:
    """A SQL string literal (quotes doubled): the only way configuration text enters the parser's SQL."""
    return "'" + text.replace("'", "''") + "'"


EARLIEST = datetime(1900, 1, 1)
LATEST = datetime(2200, 1, 1)
"""Event times are accepted from EARLIEST (inclusive) to LATEST (exclusive), in UTC."""
# Lines without `[` (most) take a pattern that starts with a literal `:` and a bracket count of `{` alone.
SUSPECT_SQL = (
    f"CASE WHEN contains(raw, '[') THEN regexp_matches(raw, {_lit(SUSPECT_PATTERN)}) "
    f"OR strlen(raw) - strlen(replace(replace(raw, '{{', ''), '[', '')) > {MAX_DEPTH} "
    f"ELSE regexp_matches(raw, {_lit(OBJECT_VALUE_PATTERN)}) OR contains(raw, {_lit(ESCAPED_NUL)}) "
    f"OR strlen(raw) - strlen(replace(raw, '{{', '')) > {MAX_DEPTH} END"
)

_SEGMENT_TIME_FORMATS = "['%Y-%m-%dT%H:%M:%S.%fZ', '%Y-%m-%dT%H:%M:%SZ']"
"""Segment's own timestamp forms (UTC, with and without fractions), read by an exact format."""


def _utc_timestamp(text: str) -> str:
    """SQL: an ISO-8601 text as a UTC TIMESTAMP (NULL when it is not one), its offset, if any, applied."""
    # Texts in Segment's own form (UTC, 'Z') parse by an exact format at a third of the cost of the general cast,
    # which gives them the same value (checked on 23,000 mutated texts); the rest take the general cast.
    return (
        f"coalesce(try_strptime({text}, {_SEGMENT_TIME_FORMATS}), TRY_CAST({text} AS TIMESTAMPTZ)::TIMESTAMP)"
    )


_JSON_WHITESPACE = " \t\r\n"
_NUMBER_START = "('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')"


class _Fields:
    """The JSON values read from each message: every path the parser uses, by one `json_extract` (one parse).

    Each path is read once into a column of its own, as JSON text (`j<i>`) and, where a check wants it as a
    string, unquoted (`u<i>`), so the checks on it do not parse it again. Built twice: a first pass only
    collects the paths the expressions need (and which of them are read as strings).
    """

    def __init__(self, collected: _Fields | None = None) -> None:
        """Collect paths (no `collected`), or render expressions for the paths `collected` found."""
        self.collecting = collected is None
        self.paths: list[tuple[str, ...]] = [] if collected is None else sorted(collected.wanted)
        self.index = {path: i for i, path in enumerate(self.paths)}
        self.wanted: set[tuple[str, ...]] = set()
        self.unquoted: set[tuple[str, ...]] = set() if collected is None else collected.unquoted

    def json(self, parts: Sequence[str]) -> str:
        """SQL: the JSON text at the path (NULL when absent)."""
        key = tuple(parts)
        if self.collecting:
            self.wanted.add(key)
            return "NULL"
        return f"j{self.index[key]}"

    def string(self, parts: Sequence[str]) -> str:
        """SQL: the value when it is a JSON string (unquoted), else NULL."""
        value = self.json(parts)
        if self.collecting:
            self.unquoted.add(tuple(parts))
            return "NULL"
        return "u" + value.removeprefix("j")

    def text(self, parts: Sequence[str]) -> str:
        """SQL: the value as identifier text: strings trimmed, numbers as text; anything else or '' is NULL."""
        value, unquoted = self.json(parts), self.string(parts)
        return (
            f"CASE WHEN starts_with({value}, '\"') THEN {_trimmed(unquoted)} "
            f"WHEN left({value}, 1) IN {_NUMBER_START} THEN {value} END"
        )

    def value(self, parts: Sequence[str]) -> str:
        """SQL: the value as text, as `json_extract_string` gives it (strings unquoted, others as JSON)."""
        value = self.json(parts)
        return f"CASE WHEN starts_with({value}, '\"') THEN {self.string(parts)} WHEN {value} <> 'null' THEN {value} END"

    def extract(self) -> str:
        """SQL: every path's JSON value in one parse of `raw` (a list; NULL when `raw` is not valid JSON)."""
        pointers = ", ".join(_lit(json_pointer(p)) for p in self.paths)
        # Not `try(...)`: an error makes DuckDB redo the whole vector row by row, and exports do hold bad lines.
        return f"CASE WHEN json_valid(raw) THEN json_extract(raw, [{pointers}]) END"

    def layers(self, source: str, keep: str) -> str:
        """SQL: `keep` and each path's JSON text (`j<i>`), then the unquoted strings (`u<i>`), from `source`."""
        texts = "".join(
            f", CASE WHEN is_object THEN x[{i + 1}]::VARCHAR END AS j{i}" for i in range(len(self.paths))
        )
        strings = "".join(
            f", CASE WHEN starts_with(j{i}, '\"') THEN json_extract_string(j{i}, '$') END AS u{i}"
            for i, path in enumerate(self.paths)
            if path in self.unquoted
        )
        return f"SELECT *{strings} FROM (SELECT {keep}{texts} FROM {source})"

    def names(self) -> list[str]:
        """The columns `layers` adds."""
        texts = [f"j{i}" for i in range(len(self.paths))]
        return texts + [f"u{i}" for i, path in enumerate(self.paths) if path in self.unquoted]

    def present(self, parts: Sequence[str]) -> str:
        """SQL: true when the path holds a value other than null."""
        return f"coalesce({self.json(parts)} <> 'null', false)"

    def is_object(self, parts: Sequence[str]) -> str:
        """SQL: true when the path is absent, null, or an object."""
        value = self.json(parts)
        return f"coalesce({value} = 'null' OR starts_with({value}, '{{'), true)"


def _per_distinct(values: pa.Array, canonical: Callable[[str], str]) -> pa.Array:
    """Apply a Python canonical form to each distinct value of an Arrow vector (a DuckDB UDF's input)."""
    forms = pc.unique(values)
    mapped = pa.array([None if f is None else canonical(f) for f in forms.to_pylist()], pa.string())
    return pc.take(mapped, pc.index_in(values, forms))


def _hazards(texts: pa.Array) -> pa.Array:
    """Why each message must be quarantined although it parses (NULL when fine); only suspect lines come here."""
    return pa.array([hazard(text) for text in texts.to_pylist()], pa.string())


def _canonical_emails(written: pa.Array) -> pa.Array:
    """Emails in canonical form, by the same Python code the ledger and blocked values use."""
    return _per_distinct(written, canonical_email)


@dataclass(frozen=True)
class Parsed:
    """The outcome of parsing: event rows, their identifier sets (text and keys), and quarantined lines."""

    events: pa.Table
    sets: pa.Table
    """One row per identifier set: `set_hash` and `ids` (JSON `[[type, value], ...]`, most trusted first)."""
    set_keys: pa.Table
    quarantine: pa.Table

    def reasons(self) -> dict[str, int]:
        """Quarantined line counts by reason."""
        counts: dict[str, int] = {}
        for reason in self.quarantine.column("reason").to_pylist():
            counts[reason] = counts.get(reason, 0) + 1
        return dict(sorted(counts.items()))


class MessageParser:
    """Parses batches of raw messages on a private in-memory DuckDB, per a workspace's settings."""

    def __init__(self, workspace: Workspace, columns: list[EventColumn]) -> None:
        """Prepare for the workspace's identifiers (in priority order) and its typed event columns."""
        self.workspace = workspace
        self.columns = columns
        self.region = workspace.normalisation.default_region
        self.db = duckdb.connect()
        self.db.execute("SET TimeZone = 'UTC'")
        udfs: list[tuple[str, Callable[[pa.Array], pa.Array]]] = [
            ("canonical_phone", self._canonical_phones),
            ("canonical_email", _canonical_emails),
            ("message_hazard", _hazards),
        ]
        for name, function in udfs:
            self.db.create_function(
                name,
                function,
                [VARCHAR],
                VARCHAR,
                type=PythonUDFType.ARROW,
                null_handling=FunctionNullHandling.SPECIAL,  # they may answer NULL ("no hazard", "no phone")
                side_effects=False,
            )

    def close(self) -> None:
        """Release the in-memory database."""
        self.db.close()

    # ------------------------------------------------------------------ SQL pieces

    def _trait(self, fields: _Fields, path: str) -> str:
        """SQL: a trait as identifier text (identify traits first, else context.traits)."""
        parts = path.split(".")
        own = fields.text(["traits", *parts])
        return f"coalesce(CASE WHEN type = 'identify' THEN {own} END, {fields.text(['context', 'traits', *parts])})"

    def _identifier(self, fields: _Fields, name: str) -> str:
        if name in ("user_id", "anonymous_id"):
            return name
        if name == "email":
            # ASCII text (as many bytes as characters) lower-cases the same in SQL: Python only for the rest
            # (not for NULL, which the length test does not pass: the Python function held the GIL for it).
            return (
                "CASE WHEN written_email IS NULL OR strlen(written_email) = length(written_email) "
                "THEN lower(written_email) "
                "ELSE canonical_email(written_email) END"
            )
        if name == "phone":
            return f"canonical_phone({self._trait(fields, 'phone')})"
        if name in ("ios.idfa", "android.id"):
            wanted = "ios" if name == "ios.idfa" else "android"
            device_type = fields.text(["context", "device", "type"])
            advertising_id = fields.text(["context", "device", "advertisingId"])
            return f"CASE WHEN lower({device_type}) = {_lit(wanted)} THEN {advertising_id} END"
        settings = self.workspace.identity.identifiers[name]
        return self._trait(fields, settings.trait or name)

    def _ids(self) -> str:
        """SQL: the identifier set as JSON `[[type, value], ...]`, most trusted first; NULL when empty.

        Reads the columns `id_0`, `id_1`, ... holding each identifier in priority order.
        """
        # Written as text, not built as a list and serialised (0.8 -> 0.4 us a message); the same JSON, as
        # `to_json` writes the values either way (the set's hash is of this text).
        order = self.workspace.identity.priority_order()

        def pair(name: str, value: str) -> str:
            return f"'[' || to_json({_lit(name)}) || ',' || to_json({value}) || ']'"

        pairs = [
            f"CASE WHEN id_{i} IS NOT NULL THEN {pair(name, f'id_{i}')} END" for i, name in enumerate(order)
        ]
        values = ", ".join(f"id_{i}" for i in range(len(order)))
        alias = (
            f"CASE WHEN type = 'alias' AND NOT coalesce(list_contains([{values}], previous_id), false) "
            f"THEN {pair(PREVIOUS_ID, 'previous_id')} END"
        )
        return f"nullif('[' || concat_ws(',', {', '.join(pairs)}, {alias}) || ']', '[]')"

    def _typed(self, fields: _Fields, column: EventColumn) -> str:
        value = fields.value([column.namespace, *column.path.split(".")])
        if column.kind == "number":  # "NaN" or "1e999" written as strings: not numbers either
            return f"CASE WHEN isfinite(TRY_CAST({value} AS DOUBLE)) THEN TRY_CAST({value} AS DOUBLE) END"
        return value

    def _queries(self) -> tuple[str, str]:
        """SQL: one pass reading each message's values (one JSON parse), then the checked rows.

        The checked rows carry the message's fields, its quarantine reason (NULL when usable) and identifiers.
        """
        collected = _Fields()
        self._checked(collected)
        fields = _Fields(collected)
        checked = self._checked(fields)
        # A valid JSON text is an object when its first character (after whitespace) is a brace.
        json_pass = (
            "SELECT source, line, raw, x, x IS NOT NULL AS valid, "
            "x IS NOT NULL AND CASE WHEN starts_with(raw, '{') THEN true "  # most lines: no trimmed copy needed
            f"ELSE starts_with(ltrim(raw, {_lit(_JSON_WHITESPACE)}), '{{') END AS is_object, "
            f"CASE WHEN x IS NOT NULL AND ({SUSPECT_SQL}) THEN message_hazard(raw) END AS hazard "
            f"FROM (SELECT source, line, raw, {fields.extract()} AS x FROM raw_input)"
        )
        return json_pass, checked

    def _checked(self, f: _Fields) -> str:
        kind = f.string(["type"])
        times = [["timestamp"], ["originalTimestamp"], ["receivedAt"]]
        written_time = "CASE " + " ".join(f"WHEN {f.present(t)} THEN {f.string(t)}" for t in times) + " END"
        nested = ", ".join(
            f"CASE WHEN starts_with({f.json([n])}, '{{') THEN {f.json([n])} END AS {n}" for n in _NESTED
        )
        columns = (
            f"valid, is_object, {kind} AS type, "
            f"CASE WHEN {kind} = 'track' THEN trim({f.string(['event'])}, {_lit(_JSON_WHITESPACE)}) "
            f"ELSE {f.string(['name'])} END AS event, "
            f"{f.text(['userId'])} AS user_id, {f.text(['anonymousId'])} AS anonymous_id, "
            f"{f.text(['groupId'])} AS group_id, {f.text(['previousId'])} AS previous_id, "
            f"{f.text(['messageId'])} AS message_id, "
            f"({' OR '.join(f.present(t) for t in times)}) AS has_time, "
            f"{_utc_timestamp(written_time)} AS ts, "
            f"{_utc_timestamp(f.string(['receivedAt']))} AS received_at, "
            + "".join(f"{f.is_object([n])} AS {n}_ok, " for n in _NESTED)
            + nested
        )
        typed = "".join(f", {self._typed(f, c)} AS {c.name}" for c in self.columns)
        order = self.workspace.identity.priority_order()
        identifiers = "".join(f", {self._identifier(f, name)} AS id_{i}" for i, name in enumerate(order))
        values = f.layers("json_pass", "source, line, raw, valid, is_object, hazard")
        read = "".join(f"{name}, " for name in f.names())  # the identifiers read them too
        written = f", {self._trait(f, 'email')} AS written_email" if "email" in order else ""
        with_fields = f"SELECT source, line, raw, hazard, {read}{columns}{typed}{written} FROM ({values})"
        with_ids = f"SELECT *{identifiers} FROM ({with_fields})"
        dropped = [
            "hazard",
            *f.names(),
            *(f"id_{i}" for i in range(len(order))),
            *(["written_email"] if written else []),
        ]
        return (
            f"SELECT * EXCLUDE ({', '.join(dropped)}), "
            f"{_REASON_SQL} AS reason, {self._ids()} AS ids FROM ({with_ids})"
        )

    # ------------------------------------------------------------------ parsing

    @contextmanager
    def _registered(self, name: str, table: pa.Table) -> Iterator[None]:
        self.db.register(name, table)
        try:
            yield
        finally:
            self.db.unregister(name)

    def _canonical_phones(self, written: pa.Array) -> pa.Array:
        """Phones in canonical form (phonenumbers), computed once per distinct written form."""
        return _per_distinct(written, lambda form: canonical_phone(form, self.region))

    def parse(self, raw: pa.Table) -> Parsed:
        """Validate raw messages (RAW_SCHEMA): usable ones become event rows, the rest quarantine rows."""
        json_pass, checked = self._queries()
        typed = "".join(f", {c.name}" for c in self.columns)
        # One statement streamed to Arrow: nothing is stored in between (the raw text only travels on for
        # quarantined lines); most parses quarantine nothing, and then the rows are the events as they come.
        rows_sql = (
            f"WITH json_pass AS ({json_pass}), checked AS ({checked}) "
            f"SELECT message_id, {MESSAGE_HASH_SQL} AS message_hash, * EXCLUDE (message_id) FROM ("
            "SELECT CASE WHEN message_id IS NULL AND reason IS NULL "
            "THEN 'gen-' || md5(rtrim(raw, chr(13) || chr(10))) ELSE message_id END AS message_id, type, "
            "event, "
            "user_id, anonymous_id, group_id, previous_id, ts AS timestamp, "
            f"CASE WHEN received_at >= TIMESTAMP '{EARLIEST:%Y-%m-%d}' AND received_at < TIMESTAMP '{LATEST:%Y-%m-%d}' "
            "THEN received_at END AS received_at, source, line, ids, "
            "coalesce(traits, '{}') AS traits, coalesce(properties, '{}') AS properties, "
            f"coalesce(context, '{{}}') AS context{typed}, reason, "
            "CASE WHEN reason IS NOT NULL THEN rtrim(raw, chr(13) || chr(10)) END AS raw "
            "FROM checked)"
        )
        with self._registered("raw_input", raw):
            rows = self.db.sql(rows_sql).to_arrow_table()
        reasons = rows.column("reason")
        if reasons.null_count == len(reasons):
            events, bad = rows, rows.slice(0, 0)
        else:
            usable = pc.is_null(reasons)
            events, bad = rows.filter(usable), rows.filter(pc.invert(usable))
        events = events.drop_columns(["reason", "raw"])
        quarantine = bad.select(["source", "line", "reason", "raw"])
        # Each distinct identifier set is hashed and decoded once; events get its hash by their dictionary index
        # (this in-memory database keeps the order of what it reads: preserve_insertion_order is on).
        encoded = pc.dictionary_encode(events.column("ids")).combine_chunks()
        with self._registered("distinct_sets", pa.table({"ids": encoded.dictionary})):
            sets = self.db.sql(
                "SELECT ids, (md5_number_lower(ids) >> 1)::BIGINT AS set_hash FROM distinct_sets"
            ).to_arrow_table()
        where = events.schema.get_field_index("ids")  # the set's text is kept once, with the set
        events = events.set_column(where, "set_hash", pc.take(sets.column("set_hash"), encoded.indices))
        with self._registered("sets", sets):
            set_keys = self.db.sql(
                "SELECT set_hash, pos::INTEGER AS pos, pairs[pos + 1][1] AS identifier_type, "
                "pairs[pos + 1][2] AS value FROM (SELECT set_hash, pairs, unnest(range(len(pairs))) AS pos "
                "FROM (SELECT set_hash, from_json(ids, '[[\"VARCHAR\"]]') AS pairs FROM sets))"
            ).to_arrow_table()
        return Parsed(events, sets.select(["set_hash", "ids"]), set_keys, quarantine)


_REASON_SQL = (
    "CASE WHEN NOT valid THEN 'not valid JSON' "
    "WHEN NOT is_object THEN 'not a JSON object' "
    "WHEN hazard IS NOT NULL THEN hazard "
    "WHEN type IS NULL OR type = '' THEN 'no type' "
    f"WHEN type NOT IN ({', '.join(_lit(t) for t in MESSAGE_TYPES)}) THEN 'unknown type ''' || left(type, 40) || '''' "
    "WHEN user_id IS NULL AND anonymous_id IS NULL THEN 'no userId or anonymousId' "
    "WHEN type = 'track' AND coalesce(event, '') = '' THEN 'track without event' "
    "WHEN type = 'group' AND group_id IS NULL THEN 'group without groupId' "
    "WHEN type = 'alias' AND previous_id IS NULL THEN 'alias without previousId' "
    "WHEN NOT has_time THEN 'no timestamp' "
    "WHEN ts IS NULL THEN 'timestamp not ISO-8601' "
    f"WHEN ts < TIMESTAMP '{EARLIEST:%Y-%m-%d}' OR ts >= TIMESTAMP '{LATEST:%Y-%m-%d}' "
    f"THEN 'timestamp out of range ({EARLIEST.year} to {LATEST.year - 1})' "
    "WHEN NOT traits_ok THEN 'traits is not an object' "
    "WHEN NOT properties_ok THEN 'properties is not an object' "
    "WHEN NOT context_ok THEN 'context is not an object' END"
)
