"""Adapters at the edge: database, mail servers, secrets, storage."""
