"""Typed models of journeys: an entry condition, re-entry rules, an exit condition and a graph of steps.

A journey's steps form a tree written as a list: the first step is where people enter, and each step names the
step that follows it (`next`, or `then` / `else` for a split, `branches[].next` / `else` for a branch). A path
that names no next step ends there (the person completes the journey). Which names refer to steps that exist,
whether every step can be reached and whether the steps loop are rules on the whole journey (`rules.py`).

Conditions are audience conditions (events, traits, audience membership, all / any / not); an event condition
in a journey may also count only events `since: entry` (since the person entered the journey) or
`since: step` (since they reached the step that tests it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from activation_pipeline.config.durations import Window
from activation_pipeline.config.models import (
    SNAKE_KEY,
    TAG,
    AudienceCondition,
    Connection,
    EventCondition,
    IdSyncMapping,
    Model,
    TraitCondition,
    TraitMapping,
    condition_discriminator,
)

JOURNEY_KEY = r"^[a-z][a-z0-9_]{0,62}$"
STEP_TYPES = ("wait", "split", "branch", "send")


class JourneyEventCondition(EventCondition):
    """An event condition that may count only events since the person entered the journey or the step."""

    since: Literal["entry", "step"] | None = Field(
        default=None,
        description="entry: only events since entering the journey; step: since reaching the step",
    )


class JourneyAllCondition(Model):
    """Every sub-condition holds."""

    all: list[JourneyCondition] = Field(min_length=1)


class JourneyAnyCondition(Model):
    """At least one sub-condition holds."""

    any: list[JourneyCondition] = Field(min_length=1)


class JourneyNotCondition(Model):
    """The sub-condition does not hold."""

    not_: JourneyCondition = Field(alias="not")


_CONDITION_MODELS: dict[str, type[BaseModel]] = {
    "all": JourneyAllCondition,
    "any": JourneyAnyCondition,
    "not": JourneyNotCondition,
    "event": JourneyEventCondition,
    "trait": TraitCondition,
    "audience": AudienceCondition,
}

JourneyCondition = Annotated[
    Annotated[JourneyAllCondition, Tag(f"{TAG}all")]
    | Annotated[JourneyAnyCondition, Tag(f"{TAG}any")]
    | Annotated[JourneyNotCondition, Tag(f"{TAG}not")]
    | Annotated[JourneyEventCondition, Tag(f"{TAG}event")]
    | Annotated[TraitCondition, Tag(f"{TAG}trait")]
    | Annotated[AudienceCondition, Tag(f"{TAG}audience")],
    condition_discriminator(_CONDITION_MODELS),
]

for _model in (JourneyAllCondition, JourneyAnyCondition, JourneyNotCondition):
    _model.model_rebuild()


def walk_journey_condition(
    node: Any, loc: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every node of a journey condition tree with its location, depth first."""
    yield loc, node
    if isinstance(node, JourneyAllCondition):
        for i, child in enumerate(node.all):
            yield from walk_journey_condition(child, (*loc, "all", i))
    elif isinstance(node, JourneyAnyCondition):
        for i, child in enumerate(node.any):
            yield from walk_journey_condition(child, (*loc, "any", i))
    elif isinstance(node, JourneyNotCondition):
        yield from walk_journey_condition(node.not_, (*loc, "not"))


# ------------------------------------------------------------------------------------------- send targets


class JourneyDestination(Model):
    """One destination of a send step, with the same event settings as a connection."""

    destination: str
    setup: Literal["default", "customized"] = "default"
    send_identify: bool = True
    send_track: bool = False
    send_mobile_ids: bool = False
    trait_enrichment: list[TraitMapping] = Field(default_factory=list)
    id_sync: list[IdSyncMapping] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict, description="per-destination options")

    @field_validator("trait_enrichment", mode="before")
    @classmethod
    def _short_enrichment(cls, items: Any) -> Any:
        if isinstance(items, list):
            return [{"trait": i, "as": i} if isinstance(i, str) else i for i in items]
        return items

    def connection(self, journey_key: str, step_key: str) -> Connection:
        """The connection this target is delivered as: source `journey:<journey>.<step>`."""
        return Connection(
            source=f"journey:{journey_key}.{step_key}",
            destination=self.destination,
            setup=self.setup,
            send_identify=self.send_identify,
            send_track=self.send_track,
            send_mobile_ids=self.send_mobile_ids,
            trait_enrichment=self.trait_enrichment,
            id_sync=self.id_sync,
            settings=self.settings,
        )


# ------------------------------------------------------------------------------------------- steps


class _Step(Model):
    key: str = Field(pattern=SNAKE_KEY, description="step key, sent with the journey key")
    name: str = ""


class WaitStep(_Step):
    """Hold people for a duration, then move them on."""

    type: Literal["wait"]
    duration: Window
    next: str | None = None

    def targets(self) -> list[tuple[tuple[str | int, ...], str | None]]:
        """The steps this one leads to, with where each is named."""
        return [(("next",), self.next)]


class SplitStep(_Step):
    """True / false on a condition: `then` when it holds, `else` when not."""

    type: Literal["split"]
    condition: JourneyCondition
    then: str | None = None
    else_: str | None = Field(default=None, alias="else")

    def targets(self) -> list[tuple[tuple[str | int, ...], str | None]]:
        """The steps this one leads to, with where each is named."""
        return [(("then",), self.then), (("else",), self.else_)]


class Branch(Model):
    """One branch of a branch step: its condition and where it leads."""

    when: JourneyCondition
    next: str | None = None


class BranchStep(_Step):
    """Several conditions in order: the first that holds picks the path, `else` when none does."""

    type: Literal["branch"]
    branches: list[Branch] = Field(min_length=1)
    else_: str | None = Field(default=None, alias="else")

    def targets(self) -> list[tuple[tuple[str | int, ...], str | None]]:
        """The steps this one leads to, with where each is named."""
        found: list[tuple[tuple[str | int, ...], str | None]] = [
            (("branches", i, "next"), b.next) for i, b in enumerate(self.branches)
        ]
        return [*found, (("else",), self.else_)]


class SendStep(_Step):
    """Send everyone who reaches this step to one or more destinations, then move them on."""

    type: Literal["send"]
    destinations: list[JourneyDestination] = Field(min_length=1)
    next: str | None = None

    def targets(self) -> list[tuple[tuple[str | int, ...], str | None]]:
        """The steps this one leads to, with where each is named."""
        return [(("next",), self.next)]


def _step_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"{TAG}{kind}" if kind in STEP_TYPES else None


Step = Annotated[
    Annotated[WaitStep, Tag(f"{TAG}wait")]
    | Annotated[SplitStep, Tag(f"{TAG}split")]
    | Annotated[BranchStep, Tag(f"{TAG}branch")]
    | Annotated[SendStep, Tag(f"{TAG}send")],
    Discriminator(
        _step_tag,
        custom_error_type="step_type",
        custom_error_message=f"unknown step: 'type' must be one of {', '.join(STEP_TYPES)}",
    ),
]


# ------------------------------------------------------------------------------------------- journeys


class Journey(Model):
    """A multi-step flow: who enters, when they may enter again, when they leave, and the steps between."""

    key: str = Field(pattern=JOURNEY_KEY, description="journey key, snake_case")
    name: str = ""
    description: str = ""
    entry: JourneyCondition = Field(description="who enters: an audience, or any audience condition")
    historical: bool = Field(
        default=True, description="false: people already matching at the first run do not enter"
    )
    created_at: AwareDatetime | None = Field(default=None, description="runs before this time enter no one")
    reentry: Literal["never", "after_exit"] = Field(
        default="never", description="after_exit: people who left may enter again when they match anew"
    )
    reentry_wait: Window | None = Field(
        default=None, description="with after_exit: at least this long between two entries"
    )
    exit: JourneyCondition | None = Field(
        default=None, description="people matching it leave wherever they are"
    )
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _reentry_wait_needs_reentry(self) -> Self:
        if self.reentry_wait is not None and self.reentry == "never":
            raise ValueError("reentry_wait needs reentry: after_exit")
        return self

    @property
    def title(self) -> str:
        """Human name, defaulting to the key."""
        return self.name or self.key

    def step(self, key: str) -> Step:
        """The step with this key."""
        return next(s for s in self.steps if s.key == key)

    def send_steps(self) -> list[SendStep]:
        """The send steps, in file order."""
        return [s for s in self.steps if isinstance(s, SendStep)]

    def connections(self) -> list[Connection]:
        """Every send target as a connection (`journey.<journey>.<step>.<destination>`)."""
        return [d.connection(self.key, s.key) for s in self.send_steps() for d in s.destinations]


def step_trait_key(journey_key: str, step_key: str) -> str:
    """The trait / property name a send step is sent under, as Segment names journey steps (`j_o_...`)."""
    return f"j_o_{journey_key}__{step_key}"
