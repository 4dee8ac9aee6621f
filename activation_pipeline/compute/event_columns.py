"""Typed event columns: every property and trait the workspace refers to, extracted once when events land.

Stored events keep `properties`, `traits` and `context` as JSON (SQL traits and new references read them),
and each referenced path also gets a column of its own, so computed traits, filters and custom traits read a
typed column instead of parsing JSON on every event. A column is named after its path and kind
(`p_revenue_num_1a2b3c`); a reference that appears later in the configuration is added to the table and filled
from the kept JSON, without reading the source again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from activation_pipeline.compute.sqlutil import JsonText, TryFloat, path_parts, table_columns
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import AggregationTrait, AnyComputedTrait, EventCondition
from activation_pipeline.config.rules import walk_conditions

Namespace = Literal["properties", "traits"]
Kind = Literal["text", "number"]


@dataclass(frozen=True, order=True)
class EventColumn:
    """One extracted column: the JSON namespace and dotted path it comes from, and its kind."""

    namespace: Namespace
    path: str
    kind: Kind

    @property
    def name(self) -> str:
        """The column's name: readable prefix, and a digest of the exact path so names never collide."""
        slug = re.sub(r"[^a-z0-9]+", "_", self.path.lower()).strip("_")[:32] or "x"
        digest = hashlib.sha1(f"{self.namespace}\x1f{self.path}".encode(), usedforsecurity=False).hexdigest()
        suffix = "_num" if self.kind == "number" else ""
        return f"{self.namespace[0]}_{slug}{suffix}_{digest[:6]}"

    @property
    def sa_type(self) -> sa.types.TypeEngine[Any]:
        """The column's SQL type."""
        return sa.Double() if self.kind == "number" else sa.Text()

    def from_json(self, json_column: Any) -> sa.ColumnElement[Any]:
        """The expression that fills this column from the kept JSON (the same value landing extracts)."""
        text = JsonText(json_column, path_parts(self.path))
        return TryFloat(text) if self.kind == "number" else text


def computed_trait_columns(trait: AnyComputedTrait) -> set[EventColumn]:
    """The event columns a computed trait reads: its property and its filters' properties."""
    found = {EventColumn("properties", flt.property, "text") for flt in trait.where}
    prop = getattr(trait, "property", None)
    if prop is not None:
        kind: Kind = "number" if isinstance(trait, AggregationTrait) else "text"
        found.add(EventColumn("properties", prop, kind))
    return found


def event_condition_columns(node: EventCondition) -> set[EventColumn]:
    """The event columns an audience's event condition reads: its filters' properties."""
    return {EventColumn("properties", flt.property, "text") for flt in node.where}


def referenced_columns(workspace: Workspace) -> list[EventColumn]:
    """Every event column the workspace's traits and audiences read, sorted."""
    found: set[EventColumn] = set()
    for key in [*workspace.traits.custom, *workspace.traits.account]:
        found.add(EventColumn("traits", key, "text"))
    for trait in workspace.traits.computed:
        found.update(computed_trait_columns(trait))
    conditions = [a.where for a in workspace.audiences]
    for predictive in workspace.traits.predictive:
        found.update(EventColumn("properties", flt.property, "text") for flt in predictive.goal.where)
        for number in (predictive.goal.property, predictive.features.monetary):
            if number is not None:
                found.add(EventColumn("properties", number, "number"))
        if predictive.population is not None:
            conditions.append(predictive.population)
    for condition in conditions:
        for _, node in walk_conditions(condition):
            if isinstance(node, EventCondition):
                found.update(event_condition_columns(node))
    return sorted(found)


def ensure_event_columns(conn: sa.Connection, events: sa.Table, workspace: Workspace) -> list[EventColumn]:
    """Add the workspace's referenced columns to the events table (filling new ones from the kept JSON)."""
    wanted = referenced_columns(workspace)
    present = set(table_columns(conn, str(events.schema), events.name))
    preparer = conn.dialect.identifier_preparer
    target = f"{preparer.quote_schema(str(events.schema))}.{preparer.quote(events.name)}"
    for column in wanted:
        if column.name not in events.c:
            events.append_column(sa.Column(column.name, column.sa_type))
        if column.name in present:
            continue
        type_sql = column.sa_type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE {target} ADD COLUMN {preparer.quote(column.name)} {type_sql}"))
        source = events.c[column.namespace]
        conn.execute(
            sa.update(events).values({column.name: column.from_json(source)}).where(source.isnot(None))
        )
    return wanted


def property_text(events: Any, path: str) -> sa.ColumnElement[str]:
    """The typed text column of an event property (`events` is the events table's columns)."""
    return events[EventColumn("properties", path, "text").name]


def property_number(events: Any, path: str) -> sa.ColumnElement[float]:
    """The typed numeric column of an event property."""
    return events[EventColumn("properties", path, "number").name]


def trait_text(events: Any, key: str) -> sa.ColumnElement[str]:
    """The typed text column of an identify or group trait."""
    return events[EventColumn("traits", key, "text").name]
