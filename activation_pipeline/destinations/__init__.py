"""Destinations: one package per type (`<type>/`: settings, capabilities, rules, client, fake server), found by
`registry`; the shared contract (`base`), HTTP sender (`http`) and normalisation. They know nothing of audiences."""
