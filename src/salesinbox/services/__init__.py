"""Use cases: one function per state change, each in one unit of work.

The web app, the CLI and the workers all call these; none of them talks to
the database or a mail server directly.
"""
