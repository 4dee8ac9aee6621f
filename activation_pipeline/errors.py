"""The one root of this project's exceptions, and the two ways a destination can fail.

Catching `ActivationError` catches every error the project raises on purpose. A destination error is either
transient (`TransientDestinationError`: the record goes again, after backoff and in the next run) or terminal
(`TerminalDestinationError`: the destination refused it for good; recorded with the reason).
"""

from __future__ import annotations


class ActivationError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigurationError(ActivationError):
    """The workspace file, a secret or a destination type is not usable as configured."""


class ComputeError(ActivationError):
    """Profiles, traits or audiences cannot be computed as asked."""


class StateError(ActivationError):
    """The state store refuses an operation (a destination already syncing, ...)."""


class DestinationError(ActivationError):
    """A destination did not accept a request or record."""


class TransientDestinationError(DestinationError):
    """Worth retrying: throttling, timeouts, server errors, an expired token."""


class TerminalDestinationError(DestinationError):
    """Refused for good: sending the same thing again gives the same answer."""
