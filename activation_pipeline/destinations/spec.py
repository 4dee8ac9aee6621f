"""What a destination type is: one `DestinationType` per `destinations/<type>/factory.py`.

A type names its configuration models, what it can do (`Capabilities`), its client and its fake server.
`capabilities(destination)` is the one place settings adjust the defaults (a webhook's `batch_size`,
Iterable's `bulk`, a destination's own `rate_limit`): batching, progress totals and dry runs all read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from activation_pipeline.config.models import Connection, DestinationBase, Model

if TYPE_CHECKING:
    from activation_pipeline.destinations.base import DestinationClient
    from activation_pipeline.destinations.http import ClientOptions
    from activation_pipeline.sandbox.base import SandboxServer

HttpBase = Annotated[
    str, Field(pattern=r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$", description="http(s) base URL")
]

HOURLY = "0 * * * *"
EVERY_SIX_HOURS = "0 */6 * * *"
EVERY_FIVE_MINUTES = "*/5 * * * *"
CADENCES = {HOURLY: "hourly", EVERY_SIX_HOURS: "every 6 hours", EVERY_FIVE_MINUTES: "every 5 minutes"}

SecretLookup = Callable[[str], str]
"""The value of a secret setting by name ("" when the setting is not a secret reference)."""

Loc = tuple[str | int, ...]
Finding = tuple[Loc, str]
"""A platform rule broken: where (relative to the destination or connection) and why."""
DestinationCheck = Callable[[Any, Callable[[str], Path]], Iterable[Finding]]
"""Platform rules on a destination's settings; gets the destination and the workspace's path resolver."""
ConnectionCheck = Callable[[Connection, Any, Sequence[tuple[Loc, str]]], Iterable[Finding]]
"""Platform rules on a connection; gets it, its destination, and the destination names its mappings use."""


class NoConnectionSettings(Model):
    """Event destinations take no per-connection options."""


@dataclass(frozen=True)
class Capabilities:
    """How a destination type is sent to: batch size, records per request, addressing, rate."""

    max_batch: int
    """Records handed to the client in one batch."""
    records_per_request: int
    """Records one API request carries (1: one request per record)."""
    rate_limit: float | None
    """Requests per second; None: no fixed cap, the platform's throttle signals govern."""
    max_concurrent: int | None
    addressed_by: tuple[str, ...] = ()
    """Identifier types of which a profile needs one to be sent at all; empty: any identifier will do."""
    rate_counts_records: bool = False
    """Whether `rate_limit` counts records rather than requests (HubSpot's seed limit: 5 objects per second);
    the client then takes a token of the limiter per record it sends."""
    separate_records_by: str | None = None
    """An identifier whose every value is a record of its own when a message has no user id (Iterable keys
    people by email): one message per value then. None: one message per member and change."""

    def batches_for(self, records: int) -> int:
        """Batches a sync of `records` records is cut into."""
        return math.ceil(records / self.max_batch) if records else 0

    def requests_for(self, records: int) -> int:
        """API requests `records` records take, batch by batch."""
        full, rest = divmod(records, self.max_batch)
        per_batch = math.ceil(self.max_batch / self.records_per_request)
        return full * per_batch + math.ceil(rest / self.records_per_request)

    def seconds_for(self, records: int, calls: int | None = None) -> float | None:
        """How long the rate limit makes sending `records` take (in `calls` requests when known, else
        `requests_for(records)`); None without a fixed rate."""
        if not self.rate_limit:
            return None
        if self.rate_counts_records:
            return records / self.rate_limit
        return (self.requests_for(records) if calls is None else calls) / self.rate_limit


@dataclass(frozen=True)
class CallCounts:
    """What a dry run knows of one connection's sync, to count the API calls it takes."""

    records: int
    batches: int
    adds: int
    removes: int
    updates: int


CallCounter = Callable[[Capabilities, Connection, Any, CallCounts], int]
"""API calls of a connection's sync: gets the capabilities, the connection, its destination and the counts."""


@dataclass(frozen=True)
class DestinationType:
    """A catalogue entry: what a destination type is, supports and accepts, and how to build its parts."""

    type_name: str
    title: str
    kind: Literal["list", "event"]
    framework: Literal["list", "actions", "function", "classic"]
    trait_enrichment: bool
    id_sync: bool
    keys: Mapping[str, str] | None
    """Destination names mappings may use, to the platform's own key; None: any name."""
    model: type[DestinationBase]
    """The destination's configuration model (its `type` literal and typed `settings`)."""
    connection_settings: type[Model]
    defaults: Capabilities
    default_schedule: str
    """Cron of the type's scheduled syncs (a destination's `schedule` replaces it)."""
    client: Callable[[Any, ClientOptions], DestinationClient]
    """Builds the client: `client(destination, options)`, the same for every type."""
    fake_server: type[SandboxServer] | None = None
    """The fake server speaking the type's API (None: nothing to fake, e.g. functions run locally)."""
    fake: Callable[[Any, SecretLookup], tuple[SandboxServer, str]] | None = None
    """Starts the type's fake server for a destination's settings; returns it and the URL to send to."""
    adjust: Callable[[Capabilities, Any], Capabilities] | None = None
    """How a destination's `settings` change the defaults (None: they do not)."""
    check_destination: DestinationCheck | None = None
    check_connection: ConnectionCheck | None = None
    accepts_historical: bool = True
    platform_limits: str = ""
    calls: CallCounter | None = None
    """How many API calls a sync makes when it is not one per `records_per_request` records (follow-up calls:
    list memberships, job polls, tags); None: `capabilities.requests_for(records)`."""

    def calls_for(self, destination: DestinationBase, connection: Connection, counts: CallCounts) -> int:
        """API calls a sync of `connection` makes for these counts (the dry run's figure)."""
        limits = self.capabilities(destination)
        if self.calls is None:
            return limits.requests_for(counts.records)
        return self.calls(limits, connection, destination, counts)

    @property
    def cadence(self) -> str:
        """Human description of the default schedule."""
        return CADENCES[self.default_schedule]

    def capabilities(self, destination: DestinationBase | None = None) -> Capabilities:
        """The capabilities of one configured destination: defaults adjusted by its settings and rate limit."""
        found = self.defaults
        if destination is None:
            return found
        if self.adjust is not None:
            found = self.adjust(found, getattr(destination, "settings", None))
        if destination.rate_limit is not None:
            limit = destination.rate_limit
            found = replace(
                found,
                rate_limit=limit.requests_per_second,
                max_concurrent=limit.max_concurrent or found.max_concurrent,
            )
        return found
