"""The whole workspace file as one model."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr

from activation_pipeline.config.journeys import Journey
from activation_pipeline.config.models import (
    SLUG,
    AnyComputedTrait,
    Audience,
    Compute,
    Connection,
    Identity,
    Model,
    Sources,
    StateSettings,
    Traits,
)
from activation_pipeline.config.serving import Serving
from activation_pipeline.destinations.registry import AnyDestination, Destination


class Normalisation(Model):
    """Defaults used when normalising identifiers for destinations."""

    default_region: str = Field(
        default="US", pattern=r"^[A-Z]{2}$", description="ISO country for phones without a country code"
    )


class Workspace(Model):
    """One workspace: the unit of configuration and of 'one resync at a time'."""

    workspace: str = Field(pattern=SLUG, description="workspace name")
    space_id: str | None = Field(
        default=None, description="sent as context.personas.space_id; default spa_<name>"
    )
    description: str = ""
    sources: Sources
    compute: Compute = Field(default_factory=Compute)
    state: StateSettings = Field(default_factory=StateSettings)
    identity: Identity = Field(default_factory=Identity)
    normalisation: Normalisation = Field(default_factory=Normalisation)
    traits: Traits = Field(default_factory=Traits)
    audiences: list[Audience] = Field(default_factory=list)
    destinations: list[Destination] = Field(default_factory=list)
    connections: list[Connection] = Field(default_factory=list)
    journeys: list[Journey] = Field(default_factory=list)
    serving: Serving = Field(default_factory=Serving)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @property
    def base_dir(self) -> Path:
        """Directory relative paths in the file are resolved against (the file's own directory)."""
        return self._base_dir

    def with_base_dir(self, base_dir: Path) -> Workspace:
        """Return this workspace with relative paths resolved against `base_dir`."""
        self._base_dir = base_dir
        return self

    def resolve_path(self, relative: str) -> Path:
        """An absolute path for a path written in the file."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else (self._base_dir / path).resolve()

    def state_location(self) -> str:
        """The state store: its URL (secrets resolved) or the absolute path of its SQLite file."""
        url = self.state.url
        if url is None:
            return str(self.resolve_path(self.state.path))
        return url if isinstance(url, str) else url.resolve("state.url")

    @property
    def personas_space_id(self) -> str:
        """The space id sent in context.personas."""
        return self.space_id or f"spa_{self.workspace}"

    def audience(self, key: str) -> Audience:
        """The audience with this key."""
        return next(a for a in self.audiences if a.key == key)

    def destination(self, destination_id: str) -> AnyDestination:
        """The destination with this id."""
        return next(d for d in self.destinations if d.id == destination_id)

    def computed_trait(self, key: str) -> AnyComputedTrait:
        """The computed trait with this key."""
        return next(t for t in self.traits.computed if t.key == key)

    def connection(self, connection_id: str) -> Connection:
        """The connection with this id (a journey send target's too)."""
        return next(c for c in self.delivery_connections() if c.connection_id == connection_id)

    def journey(self, key: str) -> Journey:
        """The journey with this key."""
        return next(j for j in self.journeys if j.key == key)

    def delivery_connections(self) -> list[Connection]:
        """Everything delivered: the connections, then every journey send step's targets as connections."""
        return [*self.connections, *(c for j in self.journeys for c in j.connections())]
