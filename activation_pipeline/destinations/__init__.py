"""Destination clients: records in, one result per record out. They know nothing of audiences."""
