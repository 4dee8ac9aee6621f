"""Destination functions: settings and client of the `function` type (user code runs in its own process)."""

from activation_pipeline.destinations.function.handlers import EventNotSupportedError, RetryableError

__all__ = ["EventNotSupportedError", "RetryableError"]
