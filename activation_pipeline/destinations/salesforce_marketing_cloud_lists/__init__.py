"""Salesforce Marketing Cloud Lists: settings and client of the `salesforce_marketing_cloud_lists` type."""
