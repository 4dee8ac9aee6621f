"""The sync path: each connection's plan (delta, profiles, addressable, records), walked by dry runs and syncs."""
