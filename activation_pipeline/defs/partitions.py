"""Partitions: one dynamic partition per connection (audience or trait x destination)."""

import re

import dagster as dg

CONNECTIONS = "connections"

connections_partitions = dg.DynamicPartitionsDefinition(name=CONNECTIONS)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def partition_key(connection_id: str) -> str:
    """A connection id made safe as a Dagster partition key (no `|`, `,`, brackets or spaces)."""
    return _UNSAFE.sub("_", connection_id)
