"""The compute results the sync layer reads, passed as Parquet files so syncs never open the compute engine.

A DuckDB file has one writer; syncs of several destinations run in parallel processes. So after each
evaluation the results are exported once (`export_results`) and every sync reads the files (`ResultsView`).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence, Set
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from activation_pipeline.activation.model import IdentifierValue, ProfileView
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.compute.sqlutil import table_names

ACCOUNT_PREFIX = "account:"
USER_TRAIT_TABLES = ("custom_traits", "computed_traits")
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
    tables: dict[str, pa.Table] = {
        "membership": pipeline.membership(),
        "identities": pipeline.identities(),
        "aliases": pipeline.read(sa.select(a.c.old_profile_id, a.c.profile_id)),
    }
    trait_tables = [*USER_TRAIT_TABLES, *ACCOUNT_TRAIT_TABLES, "account_users"]
    trait_tables += [f"sqlt_{t.key}" for t in workspace.traits.sql]
    for name in trait_tables:
        if name in present:
            tables[name] = pipeline.table(name)
    counts = {}
    for name, table in tables.items():
        pq.write_table(table, staging / f"{name}.parquet")
        counts[name] = table.num_rows
    (staging / "as_of.txt").write_text(as_of.isoformat())
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return counts


def results_directory(state_dir: Path) -> Path:
    """Where a workspace's exported results live."""
    return state_dir / "results"


class ResultsView:
    """The sync layer's `ComputeView` over exported results (each file read at most once)."""

    def __init__(self, directory: Path, sql_levels: Mapping[str, str] | None = None) -> None:
        if not (directory / "membership.parquet").is_file():
            raise FileNotFoundError(
                f"no computed results in {directory}: materialise the audiences (and sync_inputs) first"
            )
        self.directory = directory
        self.sql_levels = dict(sql_levels or {})

    @property
    def as_of(self) -> datetime:
        """The evaluation time the results are as of."""
        return datetime.fromisoformat((self.directory / "as_of.txt").read_text())

    def _rows(self, name: str) -> list[dict[str, Any]]:
        path = self.directory / f"{name}.parquet"
        return pq.read_table(path).to_pylist() if path.is_file() else []

    # ------------------------------------------------------------------ ComputeView

    def members(self, audience_key: str) -> Set[str]:
        """Profile ids (as text) in the audience now."""
        return self._members.get(audience_key, set())

    def trait_values(self, trait_key: str, level: str) -> Mapping[str, Any]:
        """Subject -> current value of a computed or SQL trait (None values are absent)."""
        if level == "account":
            return {
                f"{ACCOUNT_PREFIX}{gid}": t[trait_key]
                for gid, t in self._account_values.items()
                if t.get(trait_key) is not None
            }
        return {pid: t[trait_key] for pid, t in self._user_values.items() if t.get(trait_key) is not None}

    def aliases(self) -> Mapping[str, str]:
        """Merged-away profile id -> surviving profile id."""
        return {
            str(r["old_profile_id"]): str(r["profile_id"])
            for r in self._rows("aliases")
            if r["old_profile_id"] != r["profile_id"]
        }

    def profiles(self, subject_keys: Sequence[str]) -> Mapping[str, ProfileView]:
        """Profile views with identifiers (first-seen times), all traits and account, for the subjects given."""
        views: dict[str, ProfileView] = {}
        for subject in set(subject_keys):
            if subject.startswith(ACCOUNT_PREFIX):
                gid = subject[len(ACCOUNT_PREFIX) :]
                views[subject] = ProfileView(
                    profile_id=subject, traits=self._account_values.get(gid, {}), account_id=gid
                )
            else:
                views[subject] = ProfileView(
                    profile_id=subject,
                    identifiers=tuple(self._identifiers.get(subject, ())),
                    traits=self._user_values.get(subject, {}),
                    account_id=self._accounts.get(subject),
                )
        return views

    # ------------------------------------------------------------------ cached reads

    @cached_property
    def _members(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for row in self._rows("membership"):
            found.setdefault(row["audience_key"], set()).add(str(row["profile_id"]))
        return found

    @cached_property
    def _identifiers(self) -> dict[str, list[IdentifierValue]]:
        found: dict[str, list[IdentifierValue]] = {}
        for row in self._rows("identities"):
            found.setdefault(str(row["profile_id"]), []).append(
                IdentifierValue(
                    row["identifier_type"], row["value"], _aware(row["first_seen"]), _aware(row["last_seen"])
                )
            )
        return found

    def _merge(self, names: Sequence[str], key: str) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for name in names:
            for row in self._rows(name):
                subject = str(row.pop(key))
                merged.setdefault(subject, {}).update({k: v for k, v in row.items() if v is not None})
        return merged

    @cached_property
    def _user_values(self) -> dict[str, dict[str, Any]]:
        sql = [f"sqlt_{k}" for k, level in self.sql_levels.items() if level == "user"]
        return self._merge([*USER_TRAIT_TABLES, *sql], "profile_id")

    @cached_property
    def _account_values(self) -> dict[str, dict[str, Any]]:
        sql = [f"sqlt_{k}" for k, level in self.sql_levels.items() if level == "account"]
        return self._merge([*ACCOUNT_TRAIT_TABLES, *sql], "group_id")

    @cached_property
    def _accounts(self) -> dict[str, str]:
        return {str(r["profile_id"]): str(r["group_id"]) for r in self._rows("account_users")}
