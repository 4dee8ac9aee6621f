"""Facebook Custom Audiences: settings, rules, client and fake server of the `facebook_custom_audiences` type."""
