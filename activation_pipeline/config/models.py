"""Typed models of a workspace file: sources, identity, traits, audiences, destinations and connections.

Each model checks what it can see alone (shapes, key formats, operator/value agreement); rules that relate
several parts of the file (references, destination capabilities) live in `rules.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from croniter import croniter
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from activation_pipeline.config.durations import Window, parse_window
from activation_pipeline.config.secrets import Secret

# Union members are tagged with a leading "~" so error paths can drop the tag (see problems.format_path).
TAG = "~"

SNAKE_KEY = r"^[a-z][a-z0-9_]{0,127}$"
TRAIT_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
SLUG = r"^[a-z][a-z0-9_-]{0,62}$"

STANDARD_IDENTIFIERS: tuple[str, ...] = (
    "user_id",
    "anonymous_id",
    "email",
    "phone",
    "ios.idfa",
    "android.id",
)
MOBILE_IDENTIFIERS: frozenset[str] = frozenset({"ios.idfa", "android.id"})


class Model(BaseModel):
    """Base for every configuration model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ------------------------------------------------------------------------------------------- comparisons


class Operator(StrEnum):
    """Comparison operators usable in trait conditions and property filters."""

    EQ = "="
    NE = "!="
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    IN = "in"
    NOT_IN = "not_in"
    EXISTS = "exists"
    NOT_EXISTS = "not_exists"


ORDERING_OPERATORS = frozenset({Operator.GT, Operator.GE, Operator.LT, Operator.LE})
TEXT_OPERATORS = frozenset(
    {Operator.CONTAINS, Operator.NOT_CONTAINS, Operator.STARTS_WITH, Operator.ENDS_WITH}
)
LIST_OPERATORS = frozenset({Operator.IN, Operator.NOT_IN})
PRESENCE_OPERATORS = frozenset({Operator.EXISTS, Operator.NOT_EXISTS})

Scalar = str | int | float | bool


class Comparison(Model):
    """An operator and the value it compares with; checks that the two agree."""

    op: Operator = Field(description="comparison operator")
    value: Scalar | list[Scalar] | None = Field(default=None, description="value compared with")

    @field_validator("op", mode="before")
    @classmethod
    def _known_operator(cls, op: Any) -> Any:
        known = [o.value for o in Operator]
        if op not in known:
            raise ValueError(f"unknown operator {op!r}; use one of {', '.join(known)}")
        return op

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Self:
        op, value = self.op, self.value
        if op in PRESENCE_OPERATORS:
            if value is not None:
                raise ValueError(f"operator '{op.value}' takes no value")
        elif value is None:
            raise ValueError(f"operator '{op.value}' needs a value")
        elif op in LIST_OPERATORS:
            if not isinstance(value, list) or not value:
                raise ValueError(f"operator '{op.value}' needs a non-empty list of values")
        elif isinstance(value, list):
            raise ValueError(f"operator '{op.value}' compares with one value, not a list (use 'in')")
        elif op in ORDERING_OPERATORS and isinstance(value, bool):
            raise ValueError(f"operator '{op.value}' cannot compare with true/false")
        elif op in TEXT_OPERATORS and not isinstance(value, str):
            raise ValueError(f"operator '{op.value}' needs a text value")
        return self


class PropertyFilter(Comparison):
    """A condition on one property of an event (`properties.<name>`; dots reach nested values)."""

    property: str = Field(pattern=TRAIT_PATH, description="event property, e.g. revenue or product.category")


# ------------------------------------------------------------------------------------------- sources


class FileEventsSource(Model):
    """Segment-spec messages in JSONL or Parquet files."""

    path: str = Field(min_length=1, description="file or directory, relative to the workspace file")
    format: Literal["auto", "jsonl", "parquet"] = "auto"


class WarehouseEventsSource(Model):
    """Segment-spec messages in a SQL warehouse in Segment's layout (identifies, tracks, groups, aliases)."""

    url: str | Secret = Field(description="SQLAlchemy URL, or {env: NAME} when it holds a password")
    schema_: str = Field(default="segment", alias="schema", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


def _events_source_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        if "path" in value:
            return f"{TAG}file"
        if "url" in value:
            return f"{TAG}warehouse"
        return None
    return f"{TAG}file" if isinstance(value, FileEventsSource) else f"{TAG}warehouse"


EventsSource = Annotated[
    Annotated[FileEventsSource, Tag(f"{TAG}file")] | Annotated[WarehouseEventsSource, Tag(f"{TAG}warehouse")],
    Discriminator(
        _events_source_tag,
        custom_error_type="events_source",
        custom_error_message="an events source needs either 'path' (files) or 'url' (a warehouse)",
    ),
]


class WarehouseSource(Model):
    """The warehouse SQL traits are run against."""

    url: str | Secret = Field(description="SQLAlchemy URL, or {env: NAME} when it holds a password")


class Sources(Model):
    """Where events come from, and the warehouse SQL traits query."""

    events: EventsSource
    warehouse: WarehouseSource | None = Field(
        default=None, description="omit to run SQL traits on the compute engine"
    )


class Compute(Model):
    """The SQL engine identity, traits and audiences run on."""

    engine: Literal["duckdb", "postgres"] = "duckdb"
    path: str = Field(
        default="state/compute.duckdb", description="DuckDB file, relative to the workspace file"
    )
    url: str | Secret | None = Field(default=None, description="PostgreSQL SQLAlchemy URL (engine: postgres)")
    schema_: str | None = Field(
        default=None, alias="schema", pattern=r"^[a-z_][a-z0-9_]*$", description="default: the workspace name"
    )
    memory_limit: str = Field(
        default="1.2GB",
        pattern=r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory limit; larger work spills to disk next to the DuckDB file",
    )

    @model_validator(mode="after")
    def _postgres_needs_url(self) -> Self:
        if self.engine == "postgres" and self.url is None:
            raise ValueError("engine 'postgres' needs a 'url' (for example {env: ACTIVATION_PG_URL})")
        return self


class StateSettings(Model):
    """Where the state store lives: outbox, delivery ledger, sync snapshots, settings history."""

    path: str = Field(
        default="state/activation_state.db", description="SQLite file, relative to the workspace file"
    )
    url: str | Secret | None = Field(default=None, description="SQLAlchemy URL (PostgreSQL in production)")


# ------------------------------------------------------------------------------------------- identity


class IdentifierSettings(Model):
    """Merge rules for one identifier type (Segment's identity resolution settings)."""

    limit: int | None = Field(default=None, ge=1, description="most values one profile may hold")
    priority: int | None = Field(
        default=None, ge=1, description="1 = most trusted; default: order in the file"
    )
    custom: bool = Field(default=False, description="a custom identifier, read from `traits.<trait>`")
    trait: str | None = Field(
        default=None, pattern=TRAIT_PATH, description="trait holding a custom identifier"
    )
    blocked_values: list[str] = Field(default_factory=list, description="values never used to merge")

    @model_validator(mode="after")
    def _trait_only_for_custom(self) -> Self:
        if self.trait is not None and not self.custom:
            raise ValueError("'trait' is only for custom identifiers (custom: true)")
        return self


def _default_identifiers() -> dict[str, IdentifierSettings]:
    return {
        "user_id": IdentifierSettings(limit=1),
        "email": IdentifierSettings(limit=5),
        "phone": IdentifierSettings(limit=5),
        "anonymous_id": IdentifierSettings(),
        "ios.idfa": IdentifierSettings(),
        "android.id": IdentifierSettings(),
    }


class Identity(Model):
    """Which identifiers merge events into profiles, their limits, and values never merged on."""

    identifiers: dict[str, IdentifierSettings] = Field(default_factory=_default_identifiers)
    blocked_values: list[str] = Field(
        default_factory=list, description="values of any identifier never merged"
    )

    @field_validator("identifiers")
    @classmethod
    def _identifier_names(cls, identifiers: dict[str, IdentifierSettings]) -> dict[str, IdentifierSettings]:
        problems = []
        for name, settings in identifiers.items():
            if settings.custom and name in STANDARD_IDENTIFIERS:
                problems.append(f"'{name}' is a standard identifier and cannot be custom")
            elif not settings.custom and name not in STANDARD_IDENTIFIERS:
                problems.append(
                    f"'{name}' is not a standard identifier ({', '.join(STANDARD_IDENTIFIERS)}); "
                    "declare it with custom: true"
                )
            elif settings.custom and not _is_snake(name):
                problems.append(f"custom identifier '{name}' must be snake_case")
        if "user_id" not in identifiers and "anonymous_id" not in identifiers:
            problems.append("identity needs at least user_id or anonymous_id")
        if problems:
            raise ValueError("; ".join(problems))
        return identifiers

    def priority_order(self) -> list[str]:
        """Identifier names from most to least trusted (explicit priority first, then file order)."""
        names = list(self.identifiers)
        return sorted(
            names,
            key=lambda n: (self.identifiers[n].priority or len(names) + names.index(n), names.index(n)),
        )


def _is_snake(text: str) -> bool:
    return re.fullmatch(SNAKE_KEY, text) is not None


# ------------------------------------------------------------------------------------------- traits


Level = Literal["user", "account"]


class _ComputedTraitBase(Model):
    key: str = Field(pattern=SNAKE_KEY, description="trait key, snake_case")
    description: str = ""
    level: Level = Field(
        default="user", description="account: computed over the events of an account's users"
    )
    event: str = Field(min_length=1, description="event name the trait is computed from")
    window: Window | None = Field(default=None, description="only events within this long before as-of time")
    where: list[PropertyFilter] = Field(default_factory=list, description="property filters, all must hold")


class CounterTrait(_ComputedTraitBase):
    """How many times the event happened."""

    type: Literal["counter"]


class AggregationTrait(_ComputedTraitBase):
    """Sum, average, minimum or maximum of a numeric property."""

    type: Literal["aggregation"]
    function: Literal["sum", "avg", "min", "max"]
    property: str = Field(pattern=TRAIT_PATH)


class MostFrequentTrait(_ComputedTraitBase):
    """The property value seen most often (ties: the most recent)."""

    type: Literal["most_frequent"]
    property: str = Field(pattern=TRAIT_PATH)
    min_count: int = Field(default=1, ge=1, description="a value must be seen at least this often")


class FirstValueTrait(_ComputedTraitBase):
    """The property's value on the earliest matching event."""

    type: Literal["first_value"]
    property: str = Field(pattern=TRAIT_PATH)


class LastValueTrait(_ComputedTraitBase):
    """The property's value on the latest matching event."""

    type: Literal["last_value"]
    property: str = Field(pattern=TRAIT_PATH)


class UniqueListTrait(_ComputedTraitBase):
    """The distinct values of a property, sorted."""

    type: Literal["unique_list"]
    property: str = Field(pattern=TRAIT_PATH)
    max_items: int = Field(default=100, ge=1, le=1000)


COMPUTED_TRAIT_TYPES = ("counter", "aggregation", "most_frequent", "first_value", "last_value", "unique_list")


AnyComputedTrait = (
    CounterTrait | AggregationTrait | MostFrequentTrait | FirstValueTrait | LastValueTrait | UniqueListTrait
)


def type_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"{TAG}{kind}" if isinstance(kind, str) else None


ComputedTrait = Annotated[
    Annotated[CounterTrait, Tag(f"{TAG}counter")]
    | Annotated[AggregationTrait, Tag(f"{TAG}aggregation")]
    | Annotated[MostFrequentTrait, Tag(f"{TAG}most_frequent")]
    | Annotated[FirstValueTrait, Tag(f"{TAG}first_value")]
    | Annotated[LastValueTrait, Tag(f"{TAG}last_value")]
    | Annotated[UniqueListTrait, Tag(f"{TAG}unique_list")],
    Discriminator(
        type_tag,
        custom_error_type="computed_trait_type",
        custom_error_message=f"'type' must be one of: {', '.join(COMPUTED_TRAIT_TYPES)}",
    ),
]


class SqlTrait(Model):
    """Traits from a SQL query on the warehouse: one row per profile, one column per trait."""

    key: str = Field(pattern=SNAKE_KEY)
    description: str = ""
    query: str = Field(min_length=1, description="SQL text, or a .sql file relative to the workspace file")
    identifier: str = Field(
        description="identifier type the query's rows are keyed by (a column of that name)"
    )
    columns: list[str] = Field(default_factory=list, description="trait columns; default: [key]")
    level: Level = "user"

    @field_validator("columns")
    @classmethod
    def _snake_columns(cls, columns: list[str]) -> list[str]:
        bad = [c for c in columns if not _is_snake(c)]
        if bad:
            raise ValueError(f"column names must be snake_case trait keys: {', '.join(bad)}")
        return columns

    @property
    def trait_keys(self) -> list[str]:
        """The trait keys this query produces."""
        return self.columns or [self.key]

    @property
    def is_file(self) -> bool:
        """True when `query` names a .sql file rather than holding SQL text."""
        return self.query.strip().lower().endswith(".sql") and "\n" not in self.query.strip()


PREDICTIVE_SHORTCUTS: dict[str, dict[str, Any]] = {
    "likelihood_to_purchase": {
        "kind": "likelihood",
        "goal": {"event": "Order Completed"},
        "horizon": "30d",
        "features": {"monetary": "revenue"},
    },
    "likelihood_to_churn": {"kind": "likelihood", "goal": {"absent": True}, "horizon": "30d"},
    "predicted_ltv": {
        "kind": "value",
        "goal": {"event": "Order Completed", "property": "revenue"},
        "horizon": "90d",
        "features": {"monetary": "revenue"},
    },
}
"""What each `shortcut` of a predictive trait fills in (keys written in the file win)."""


class PredictiveGoal(Model):
    """What a predictive trait predicts: a tracked event (with filters) within the horizon, or its absence."""

    event: str | None = Field(
        default=None, min_length=1, description="event name; omitted: any tracked event"
    )
    where: list[PropertyFilter] = Field(default_factory=list, description="property filters, all must hold")
    property: str | None = Field(
        default=None,
        pattern=TRAIT_PATH,
        description="kind value: the numeric property summed over the horizon",
    )
    absent: bool = Field(default=False, description="true: the goal is that no such event happens (churn)")

    @model_validator(mode="after")
    def _filters_need_event(self) -> Self:
        if self.where and self.event is None:
            raise ValueError("property filters ('where') need an 'event'")
        return self


class PredictiveFeatures(Model):
    """What the model learns from, per profile, as of a time."""

    events: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="events counted per window; default: the 20 most frequent"
    )
    windows: list[Window] = Field(
        default_factory=lambda: [parse_window("7d"), parse_window("30d"), parse_window("90d")],
        min_length=1,
        max_length=6,
    )
    monetary: str | None = Field(default=None, pattern=TRAIT_PATH, description="numeric property summed")
    traits: list[Annotated[str, Field(pattern=SNAKE_KEY)]] = Field(
        default_factory=list,
        description="computed traits (numbers; most_frequent, first_value and last_value as categories) and "
        "custom traits (categories), taken as of the same time",
    )


class PredictiveTrait(Model):
    """A model trained on the workspace's own events: likelihood of a goal within a horizon, or its value."""

    key: str = Field(pattern=SNAKE_KEY, description="trait key; `<key>_percentile` is its percentile")
    description: str = ""
    shortcut: Literal["likelihood_to_purchase", "likelihood_to_churn", "predicted_ltv"] | None = None
    kind: Literal["likelihood", "value"] = Field(description="a probability, or a predicted sum")
    goal: PredictiveGoal
    horizon: Window = Field(description="the goal counts when it happens within this long")
    population: Condition | None = Field(
        default=None, description="event conditions: who is trained and scored"
    )
    retrain: Window = Field(
        default_factory=lambda: parse_window("7d"), description="model age before retraining"
    )
    features: PredictiveFeatures = Field(default_factory=PredictiveFeatures)
    max_training_rows: int = Field(
        default=100_000,
        ge=1_000,
        le=10_000_000,
        description="larger training populations are sampled (by profile id, in SQL) to about this many",
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_shortcut(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("shortcut"), str):
            filled = PREDICTIVE_SHORTCUTS.get(data["shortcut"])
            if filled is not None:
                return {**filled, **data}
        return data

    @model_validator(mode="after")
    def _goal_fits_kind(self) -> Self:
        goal = self.goal
        if self.kind == "value" and (goal.property is None or goal.absent):
            raise ValueError("kind 'value' needs goal.property (the numeric property summed), and not absent")
        if self.kind == "likelihood" and goal.property is not None:
            raise ValueError("goal.property is only for kind 'value'")
        return self

    @property
    def trait_keys(self) -> list[str]:
        """The trait keys it writes: the score and its percentile (0-100) among the profiles scored."""
        return [self.key, f"{self.key}_percentile"]


class Traits(Model):
    """Custom traits (from identify and group calls), computed, SQL and predictive traits."""

    custom: list[Annotated[str, Field(pattern=TRAIT_PATH)]] = Field(
        default_factory=list, description="user traits read from identify calls (latest value wins)"
    )
    account: list[Annotated[str, Field(pattern=TRAIT_PATH)]] = Field(
        default_factory=list, description="account traits read from group calls (latest value wins)"
    )
    computed: list[ComputedTrait] = Field(default_factory=list)
    sql: list[SqlTrait] = Field(default_factory=list)
    predictive: list[PredictiveTrait] = Field(default_factory=list)


# ------------------------------------------------------------------------------------------- audiences


class EventCondition(Model):
    """The profile did an event at least / at most N times, optionally within a window and with filters."""

    event: str = Field(min_length=1)
    within: Window | None = Field(default=None, description="only events this long before as-of time")
    at_least: int | None = Field(default=None, ge=0)
    at_most: int | None = Field(default=None, ge=0)
    where: list[PropertyFilter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _count_bounds(self) -> Self:
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise ValueError(f"at_least ({self.at_least}) is greater than at_most ({self.at_most})")
        return self

    @property
    def min_count(self) -> int:
        """Lower bound on the count (default 1 when no bound is given)."""
        if self.at_least is not None:
            return self.at_least
        return 1 if self.at_most is None else 0


class TraitCondition(Comparison):
    """A comparison on a custom, computed or SQL trait (or an account trait in account audiences)."""

    trait: str = Field(pattern=TRAIT_PATH)


class AudienceCondition(Model):
    """Membership of another audience."""

    audience: str = Field(pattern=SNAKE_KEY)


class AllCondition(Model):
    """Every sub-condition holds."""

    all: list[Condition] = Field(min_length=1)


class AnyCondition(Model):
    """At least one sub-condition holds."""

    any: list[Condition] = Field(min_length=1)


class NotCondition(Model):
    """The sub-condition does not hold."""

    not_: Condition = Field(alias="not")


CONDITION_KEYS = ("all", "any", "not", "event", "trait", "audience")


def condition_discriminator(models: Mapping[str, type[BaseModel]]) -> Discriminator:
    """How a condition tree tells its kinds apart: the one key a mapping holds, or the model an object is."""

    def tag(value: Any) -> str | None:
        if isinstance(value, dict):
            present = [k for k in CONDITION_KEYS if k in value]
            return f"{TAG}{present[0]}" if len(present) == 1 else None
        for key, model in models.items():
            if isinstance(value, model):
                return f"{TAG}{key}"
        return None

    return Discriminator(
        tag,
        custom_error_type="condition",
        custom_error_message=f"a condition needs exactly one of: {', '.join(CONDITION_KEYS)}",
    )


_CONDITION_MODELS: dict[str, type[BaseModel]] = {
    "all": AllCondition,
    "any": AnyCondition,
    "not": NotCondition,
    "event": EventCondition,
    "trait": TraitCondition,
    "audience": AudienceCondition,
}

Condition = Annotated[
    Annotated[AllCondition, Tag(f"{TAG}all")]
    | Annotated[AnyCondition, Tag(f"{TAG}any")]
    | Annotated[NotCondition, Tag(f"{TAG}not")]
    | Annotated[EventCondition, Tag(f"{TAG}event")]
    | Annotated[TraitCondition, Tag(f"{TAG}trait")]
    | Annotated[AudienceCondition, Tag(f"{TAG}audience")],
    condition_discriminator(_CONDITION_MODELS),
]

for _model in (AllCondition, AnyCondition, NotCondition, PredictiveTrait, Traits):
    _model.model_rebuild()


class Audience(Model):
    """A set of profiles (or of accounts' users) that satisfy a condition tree as of a time."""

    key: str = Field(pattern=SNAKE_KEY, description="audience key, sent as the trait/property name")
    name: str = ""
    description: str = ""
    level: Level = Field(default="user", description="account: members are the users of qualifying accounts")
    historical: bool = Field(default=True, description="false: only events after created_at count")
    created_at: AwareDatetime | None = Field(
        default=None, description="creation time; required when historical is false"
    )
    max_size_change: float = Field(
        default=0.5, gt=0, description="warn when size moves more than this share between two runs"
    )
    where: Condition

    @model_validator(mode="after")
    def _created_at_for_non_historical(self) -> Self:
        if not self.historical and self.created_at is None:
            raise ValueError(
                "an audience with historical: false needs created_at (a timestamp with time zone)"
            )
        return self

    @property
    def title(self) -> str:
        """Human name, defaulting to the key."""
        return self.name or self.key


# ------------------------------------------------------------------------------------------- destinations


class RateLimit(Model):
    """Requests per second a destination is sent, shared by every run writing to it."""

    requests_per_second: float = Field(gt=0, le=100_000)
    max_concurrent: int | None = Field(default=None, ge=1)


class DestinationBase(Model):
    """What every destination has; `destination_types` adds the typed `settings` of each type."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="destination id, snake_case")
    name: str = ""
    rate_limit: RateLimit | None = Field(default=None, description="default: the catalogue's")
    schedule: str | None = Field(
        default=None, description="cron for scheduled syncs; default: the catalogue's"
    )
    accepts_historical: bool | None = Field(
        default=None, description="false: first sync sends only who enters afterwards (no backfill)"
    )

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, schedule: str | None) -> str | None:
        if schedule is not None and not croniter.is_valid(schedule):
            raise ValueError(f"{schedule!r} is not a valid cron expression (e.g. '0 */6 * * *')")
        return schedule


# ------------------------------------------------------------------------------------------- connections


class IdStrategy(StrEnum):
    """Which values of an identifier ID Sync sends."""

    LAST_ADDED = "last_added"
    FIRST_ADDED = "first_added"
    ALL = "all"


class TraitMapping(Model):
    """A profile trait sent under a destination name (Trait Enrichment)."""

    trait: str = Field(pattern=TRAIT_PATH)
    as_: str = Field(alias="as", min_length=1, description="destination name; default: the trait key")


class IdSyncMapping(Model):
    """An identifier sent under a destination name with a strategy (ID Sync)."""

    identifier: str = Field(min_length=1)
    as_: str = Field(alias="as", min_length=1)
    strategy: IdStrategy = Field(description="last_added, first_added or all")

    @field_validator("strategy", mode="before")
    @classmethod
    def _known_strategy(cls, strategy: Any) -> Any:
        known = [s.value for s in IdStrategy]
        if strategy not in known:
            raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(known)}")
        return strategy


class Connection(Model):
    """An audience or computed trait connected to a destination, with its event settings."""

    id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,127}$")
    source: str = Field(
        pattern=r"^((audience|trait):[a-z][a-z0-9_]*|journey:[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)$",
        description="audience:<key> or trait:<key> (journey:<journey>.<step> for a journey's send step)",
    )
    destination: str
    setup: Literal["default", "customized"] = "default"
    send_identify: bool = True
    send_track: bool = False
    send_mobile_ids: bool = False
    trait_enrichment: list[TraitMapping] = Field(default_factory=list)
    id_sync: list[IdSyncMapping] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict, description="per-connection destination options")

    @field_validator("trait_enrichment", mode="before")
    @classmethod
    def _short_enrichment(cls, items: Any) -> Any:
        # `- first_name` is short for `- {trait: first_name, as: first_name}`.
        if isinstance(items, list):
            return [{"trait": i, "as": i} if isinstance(i, str) else i for i in items]
        return items

    @property
    def source_kind(self) -> Literal["audience", "trait", "journey"]:
        """Whether the source is an audience, a computed trait or a journey's send step."""
        kind = self.source.split(":", 1)[0]
        return "audience" if kind == "audience" else "journey" if kind == "journey" else "trait"

    @property
    def source_key(self) -> str:
        """The audience or trait key of the source."""
        return self.source.split(":", 1)[1]

    @property
    def connection_id(self) -> str:
        """Stable id, also the Dagster partition key: `<audience|trait>.<key>.<destination>` unless given."""
        return self.id or f"{self.source_kind}.{self.source_key}.{self.destination}"
