"""Background work: the sync supervisor (and, later, the job runner). Workers
call services, never adapters; the import-linter contract holds them to it."""
