"""The database adapter: tables, engine set-up and migrations."""
