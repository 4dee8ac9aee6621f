"""Every destination type, found by its folder: `destinations/<type>/factory.py` defines `DESTINATION`.

Adding a destination type is adding one folder; nothing here names a type.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Discriminator, Tag

import activation_pipeline.destinations as destinations_package
from activation_pipeline.config.models import TAG, DestinationBase, type_tag
from activation_pipeline.destinations.base import DestinationClient
from activation_pipeline.destinations.http import ClientOptions
from activation_pipeline.destinations.spec import Capabilities, DestinationType
from activation_pipeline.errors import ConfigurationError


def _discover() -> Mapping[str, DestinationType]:
    found: dict[str, DestinationType] = {}
    for module in sorted(pkgutil.iter_modules(destinations_package.__path__), key=lambda m: m.name):
        if not module.ispkg:
            continue
        try:
            factory = importlib.import_module(f"{destinations_package.__name__}.{module.name}.factory")
        except ModuleNotFoundError as error:
            if error.name != f"{destinations_package.__name__}.{module.name}.factory":
                raise
            continue  # a helper package (normalise), not a destination type
        destination_type: DestinationType = factory.DESTINATION
        found[destination_type.type_name] = destination_type
    return MappingProxyType(found)


CATALOGUE: Mapping[str, DestinationType] = _discover()
"""Destination type name -> its `DestinationType` (models, capabilities, client, fake server)."""


class UnknownDestinationTypeError(ConfigurationError, ValueError):
    """No destination type of that name exists."""


def destination_type(type_name: str) -> DestinationType:
    """The destination type of a name, or `UnknownDestinationTypeError` listing the known ones."""
    found = CATALOGUE.get(type_name)
    if found is None:
        raise UnknownDestinationTypeError(
            f"no destination type {type_name!r}; known: {', '.join(sorted(CATALOGUE))}"
        )
    return found


def capabilities(destination: DestinationBase) -> Capabilities:
    """A configured destination's capabilities (its type's defaults adjusted by its settings)."""
    return destination_type(str(getattr(destination, "type", None))).capabilities(destination)


def build_client(destination: DestinationBase, options: ClientOptions | None = None) -> DestinationClient:
    """A client for a configured destination: `client(destination, options)` of its type."""
    found = destination_type(str(getattr(destination, "type", None)))
    return found.client(destination, options or ClientOptions())


DESTINATION_MODELS: Mapping[str, type[DestinationBase]] = MappingProxyType(
    {name: t.model for name, t in CATALOGUE.items()}
)

if TYPE_CHECKING:
    AnyDestination = Any
    Destination = Any
else:
    AnyDestination = Union[tuple(DESTINATION_MODELS.values())]  # noqa: UP007 - built from the registry
    Destination = Annotated[
        Union[tuple(Annotated[m, Tag(f"{TAG}{name}")] for name, m in DESTINATION_MODELS.items())],  # noqa: UP007
        Discriminator(
            type_tag,
            custom_error_type="destination_type",
            custom_error_message=f"'type' must be one of: {', '.join(DESTINATION_MODELS)}",
        ),
    ]
