"""The compute results the sync layer reads, passed as Parquet files so syncs never open the compute engine.

A DuckDB file has one writer; syncs of several destinations run in parallel processes. So after each
evaluation the results are exported once (`export_results`) and every sync reads the files (`ResultsView`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from duckdb import ColumnExpression as Column
from duckdb import ConstantExpression as Constant
from duckdb.sqltypes import VARCHAR

from activation_pipeline.activation.model import IdentifierValue, ProfileView
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.compute.schema import PREDICTIVE_TABLE
from activation_pipeline.compute.sqlutil import table_names
from activation_pipeline.journeys.delivery import STEP_MEMBERS_FILE, step_members_query

ACCOUNT_PREFIX = "account:"
USER_TRAIT_TABLES = ("custom_traits", "computed_traits", PREDICTIVE_TABLE)
ACCOUNT_TRAIT_TABLES = ("account_traits", "account_computed_traits")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def export_results(pipeline: ComputePipeline, directory: Path, as_of: datetime) -> dict[str, int]:
    """Write membership, identities, merges, accounts and every trait table as Parquet; row counts per file."""
    staging = directory.with_name(directory.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    workspace = pipeline.workspace
    with pipeline.engine.begin() as conn:
        present = table_names(conn, pipeline.engine.schema)
    a = pipeline.engine.tables.profile_aliases
    queries: dict[str, sa.Select[Any]] = {
        "membership": pipeline.membership_query(),
        "identities": pipeline.identities_query(),
        "aliases": sa.select(a.c.old_profile_id, a.c.profile_id),
    }
    if "journey_transitions" in present:
        queries[STEP_MEMBERS_FILE] = step_members_query(pipeline.engine.schema, workspace)
    trait_tables = [*USER_TRAIT_TABLES, *ACCOUNT_TRAIT_TABLES, "account_users"]
    trait_tables += [f"sqlt_{t.key}" for t in workspace.traits.sql]
    for name in trait_tables:
        if name in present:
            queries[name] = pipeline.table_query(name)
    counts = {
        name: _write_parquet(pipeline, query, staging / f"{name}.parquet") for name, query in queries.items()
    }
    (staging / "as_of.txt").write_text(as_of.isoformat())
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return counts


def _write_parquet(pipeline: ComputePipeline, query: sa.Select[Any], path: Path) -> int:
    """Write a query's rows as a Parquet file; the row count. DuckDB writes it itself, in parallel."""
    if not pipeline.engine.is_duckdb:
        table = pipeline.read(query)
        pq.write_table(table, path)
        return table.num_rows
    with pipeline.engine.begin() as conn:
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        target = "'" + str(path).replace("'", "''") + "'"
        # COPY has no SQLAlchemy construct: the SELECT is compiled by SQLAlchemy, the path is our own.
        [(rows,)] = conn.exec_driver_sql(f"COPY ({sql}) TO {target} (FORMAT parquet)").fetchall()
    return int(rows)


def results_directory(state_dir: Path) -> Path:
    """Where a workspace's exported results live."""
    return state_dir / "results"


@dataclass(frozen=True)
class Reader:
    """One DuckDB cursor and the results directory its relations read from."""

    connection: duckdb.DuckDBPyConnection
    directory: Path

    def parquet(self, name: str) -> duckdb.DuckDBPyRelation:
        """An exported result file as a relation."""
        return self.connection.read_parquet(str(self.directory / f"{name}.parquet"))


class ResultsView:
    """The sync layer's `ComputeView` over exported results, read through DuckDB in sorted, bounded streams.

    Nothing is read whole: members and trait values stream in subject-key order, and profiles are looked up
    per chunk of subjects, so a sync's memory does not grow with the audience size."""

    def __init__(
        self,
        directory: Path,
        sql_levels: Mapping[str, str] | None = None,
        *,
        memory_limit: str = "512MB",
        batch_rows: int = 50_000,
    ) -> None:
        if not (directory / "membership.parquet").is_file():
            raise FileNotFoundError(
                f"no computed results in {directory}: materialise the audiences (and sync_inputs) first"
            )
        self.directory = directory
        self.sql_levels = dict(sql_levels or {})
        self.batch_rows = batch_rows
        self._duckdb = duckdb.connect(config={"memory_limit": memory_limit, "threads": 2})

    @property
    def as_of(self) -> datetime:
        """The evaluation time the results are as of."""
        return datetime.fromisoformat((self.directory / "as_of.txt").read_text())

    def _file(self, name: str) -> Path | None:
        path = self.directory / f"{name}.parquet"
        return path if path.is_file() else None

    def _columns(self, name: str) -> list[str]:
        path = self._file(name)
        return list(pq.read_schema(path).names) if path is not None else []

    def _stream(self, build: Callable[[Reader], duckdb.DuckDBPyRelation]) -> Iterator[dict[str, list[Any]]]:
        """The rows of the relation `build` makes, in column batches of `batch_rows`.

        Each stream has its own cursor, so streams stay open side by side (members while profiles load)."""
        cursor = self._duckdb.cursor()
        try:
            reader = Reader(cursor, self.directory)
            for batch in build(reader).to_arrow_reader(self.batch_rows):
                yield batch.to_pydict()
        finally:
            cursor.close()

    # ------------------------------------------------------------------ ComputeView

    def members(self, audience_key: str) -> Iterator[str]:
        """Profile ids (as text) in the audience now, in key order."""

        def relation(read: Reader) -> duckdb.DuckDBPyRelation:
            return (
                read.parquet("membership")
                .filter(Column("audience_key") == Constant(audience_key))
                .select(Column("profile_id").cast(VARCHAR).alias("s"))
                .order("s")
            )

        for batch in self._stream(relation):
            yield from batch["s"]

    def journey_members(self, journey_key: str, step_key: str) -> Iterator[tuple[str, int]]:
        """(profile id as text, entry) of everyone who reached a journey's send step, in key order."""
        if self._file(STEP_MEMBERS_FILE) is None:
            return

        def relation(read: Reader) -> duckdb.DuckDBPyRelation:
            return (
                read.parquet(STEP_MEMBERS_FILE)
                .filter(
                    (Column("journey_key") == Constant(journey_key))
                    & (Column("step_key") == Constant(step_key))
                )
                .select(Column("profile_id").cast(VARCHAR).alias("s"), Column("entry").alias("v"))
                .order("s")
            )

        for batch in self._stream(relation):
            yield from zip(batch["s"], (int(v) for v in batch["v"]), strict=True)

    def trait_values(self, trait_key: str, level: str) -> Iterator[tuple[str, Any]]:
        """(subject, current value) of a computed or SQL trait in key order (None values are absent)."""
        names, key = (
            (self._account_tables(), "group_id")
            if level == "account"
            else (self._user_tables(), "profile_id")
        )
        holders = [name for name in names if trait_key in self._columns(name)]
        if not holders:
            return
        prefix = Constant(ACCOUNT_PREFIX if level == "account" else "")

        def relation(read: Reader) -> duckdb.DuckDBPyRelation:
            return (
                read.parquet(holders[-1])  # a later table wins, as in `profiles`
                .filter(Column(trait_key).isnotnull())
                .select(prefix.concat(Column(key).cast(VARCHAR)).alias("s"), Column(trait_key).alias("v"))
                .order("s")
            )

        for batch in self._stream(relation):
            yield from zip(batch["s"], batch["v"], strict=True)

    def aliases(self) -> Mapping[str, str]:
        """Merged-away profile id -> surviving profile id."""
        path = self._file("aliases")
        if path is None:
            return {}
        table = pq.read_table(path)
        return {
            str(old): str(new)
            for old, new in zip(
                table.column("old_profile_id").to_pylist(),
                table.column("profile_id").to_pylist(),
                strict=True,
            )
            if old != new
        }

    def profiles(self, subject_keys: Sequence[str]) -> Mapping[str, ProfileView]:
        """Profile views with identifiers (first-seen times), all traits and account, for the subjects given."""
        subjects = sorted(set(subject_keys))
        users = [s for s in subjects if not s.startswith(ACCOUNT_PREFIX)]
        groups = [s[len(ACCOUNT_PREFIX) :] for s in subjects if s.startswith(ACCOUNT_PREFIX)]
        identifiers = self._identifiers(users)
        user_values = self._values(self._user_tables(), "profile_id", users)
        account_values = self._values(self._account_tables(), "group_id", groups)
        accounts = self._accounts(users)
        views: dict[str, ProfileView] = {}
        for subject in subjects:
            if subject.startswith(ACCOUNT_PREFIX):
                gid = subject[len(ACCOUNT_PREFIX) :]
                views[subject] = ProfileView(
                    profile_id=subject, traits=account_values.get(gid, {}), account_id=gid
                )
            else:
                views[subject] = ProfileView(
                    profile_id=subject,
                    identifiers=tuple(identifiers.get(subject, ())),
                    traits=user_values.get(subject, {}),
                    account_id=accounts.get(subject),
                )
        return views

    # ------------------------------------------------------------------ lookups per chunk

    def _user_tables(self) -> list[str]:
        sql = [f"sqlt_{k}" for k, level in self.sql_levels.items() if level == "user"]
        return [n for n in [*USER_TRAIT_TABLES, *sql] if self._file(n) is not None]

    def _account_tables(self) -> list[str]:
        sql = [f"sqlt_{k}" for k, level in self.sql_levels.items() if level == "account"]
        return [n for n in [*ACCOUNT_TRAIT_TABLES, *sql] if self._file(n) is not None]

    def _rows_for(self, name: str, key: str, wanted: Sequence[str]) -> Iterator[dict[str, Any]]:
        if self._file(name) is None or not wanted:
            return
        keys = pa.table({"wanted_key": pa.array(wanted, pa.string())})

        def relation(read: Reader) -> duckdb.DuckDBPyRelation:
            rows = read.parquet(name)
            chosen = read.connection.from_arrow(keys)
            joined = rows.join(chosen, Column(key).cast(VARCHAR) == Column("wanted_key"))
            return joined.select(*[Column(c) for c in rows.columns])

        for batch in self._stream(relation):
            columns = list(batch)
            for values in zip(*batch.values(), strict=True):
                yield dict(zip(columns, values, strict=True))

    def _identifiers(self, users: Sequence[str]) -> dict[str, list[IdentifierValue]]:
        found: dict[str, list[IdentifierValue]] = {}
        for row in self._rows_for("identities", "profile_id", users):
            found.setdefault(str(row["profile_id"]), []).append(
                IdentifierValue(
                    row["identifier_type"], row["value"], _aware(row["first_seen"]), _aware(row["last_seen"])
                )
            )
        return found

    def _values(self, names: Sequence[str], key: str, wanted: Sequence[str]) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for name in names:
            for row in self._rows_for(name, key, wanted):
                subject = str(row.pop(key))
                merged.setdefault(subject, {}).update({k: v for k, v in row.items() if v is not None})
        return merged

    def _accounts(self, users: Sequence[str]) -> dict[str, str]:
        rows = self._rows_for("account_users", "profile_id", users)
        return {str(r["profile_id"]): str(r["group_id"]) for r in rows}
