"""Braze: settings, client and fake server of the `braze` type."""
