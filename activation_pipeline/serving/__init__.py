"""The Profile API: the serving copy every evaluation publishes, and the HTTP service that reads it."""
