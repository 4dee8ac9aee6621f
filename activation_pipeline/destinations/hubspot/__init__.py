"""HubSpot: settings, client and fake server of the `hubspot` type."""
