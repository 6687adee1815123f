"""Background workers (sync supervisor, job runner) — they arrive with the sync
engine in step 2. Like the web app, they call services and never adapters; the
import-linter contract in pyproject.toml already holds them to it."""
