"""Classic webhooks: settings, client and fake server of the `webhook` type."""
