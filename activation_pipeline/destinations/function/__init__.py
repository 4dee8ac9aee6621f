"""Destination functions: settings and client of the `function` type (user code runs locally)."""
