"""Mail bytes to product data: parse raw RFC 5322 / MIME messages safely.

``salesinbox.mime.parse.parse_message`` is the entry point. This package
imports only the standard library, charset-normalizer and inscriptis.
"""
