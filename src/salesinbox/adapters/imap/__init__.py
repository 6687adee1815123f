"""The IMAP adapter (imapclient, run in worker threads by the sync service)."""
