"""Mail bytes to product data: parse raw RFC 5322 / MIME messages safely.

``salesinbox.mime.parse.parse_message`` is the entry point; ``quotes`` folds
quoted history and signatures, ``html_safety`` sanitises received HTML. No
I/O here: the standard library, charset-normalizer, inscriptis, nh3,
mail-parser-reply, quotequail and lxml only.
"""
