"""SendGrid Marketing Contacts: settings, client and fake server of the `sendgrid` type."""
