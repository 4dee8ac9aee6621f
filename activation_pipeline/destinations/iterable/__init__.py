"""Iterable: settings, client and fake server of the `iterable` type."""
