"""Intercom: settings, client and fake server of the `intercom` type."""
