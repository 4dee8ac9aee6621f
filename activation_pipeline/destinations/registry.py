"""Destination type name -> client constructor. Adding a destination type is one line in `BUILDERS`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activation_pipeline.config.models import DestinationBase
from activation_pipeline.destinations.base import DestinationClient
from activation_pipeline.destinations.braze import BrazeClient
from activation_pipeline.destinations.facebook import FacebookClient
from activation_pipeline.destinations.function import FunctionClient
from activation_pipeline.destinations.google_ads import GoogleAdsClient
from activation_pipeline.destinations.http import ClientOptions
from activation_pipeline.destinations.iterable import IterableClient
from activation_pipeline.destinations.marketo import MarketoClient
from activation_pipeline.destinations.webhook import WebhookClient
from activation_pipeline.errors import ConfigurationError

ClientBuilder = Callable[[Any, ClientOptions], DestinationClient]

BUILDERS: dict[str, ClientBuilder] = {
    "webhook": WebhookClient,
    "braze": BrazeClient,
    "iterable": IterableClient,
    "function": FunctionClient,
    "facebook_custom_audiences": FacebookClient.from_destination,
    "google_ads_remarketing_lists": GoogleAdsClient.from_destination,
    "marketo_static_lists": MarketoClient.from_destination,
}


class UnknownDestinationTypeError(ConfigurationError, ValueError):
    """No client is registered for a destination type."""


def build_client(destination: DestinationBase, options: ClientOptions | None = None) -> DestinationClient:
    """A client for a configured destination (its `type` picks the constructor)."""
    type_name = getattr(destination, "type", None)
    builder = BUILDERS.get(str(type_name))
    if builder is None:
        raise UnknownDestinationTypeError(
            f"no client for destination type {type_name!r}; known: {', '.join(sorted(BUILDERS))}"
        )
    return builder(destination, options or ClientOptions())
