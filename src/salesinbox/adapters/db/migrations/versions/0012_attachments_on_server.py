"""attachments on server: an attachment whose bytes were left on the mail server at sync

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 06:00:00.000000

A message over 100 KB is synced as a skeleton (mime/lean.py): its text and
HTML, every part's headers, its small parts; a large attachment's bytes stay
on the server and are fetched, then cached, when someone opens it. Existing
rows were synced whole: false.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("on_server", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_column("on_server")
