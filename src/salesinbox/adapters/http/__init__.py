"""Outbound HTTP on behalf of users: the SSRF-safe remote-image fetcher."""
