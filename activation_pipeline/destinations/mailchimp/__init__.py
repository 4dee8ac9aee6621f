"""Mailchimp: settings, client and fake server of the `mailchimp` type."""
