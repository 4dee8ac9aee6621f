"""Salesforce Marketing Cloud (events): settings, the shared REST API access, client and fake server."""
