"""Marketo Static Lists: settings, client and fake server of the `marketo_static_lists` type."""
