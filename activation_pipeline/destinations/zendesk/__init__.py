"""Zendesk: settings, client and fake server of the `zendesk` type."""
