"""Destinations: one package per type (`<type>/`: settings, capabilities, rules, client, fake server), found by
`registry`; the shared contract (`base`), HTTP sender (`http`), normalisation, and what the contact destinations
share (`contacts`: an identify read as a contact update; `checks`: their connection rules). They know nothing of
audiences."""
