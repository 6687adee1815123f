"""gmail message ids: a location's X-GM-MSGID, Gmail's id of the message across the account's folders

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 03:00:00.000000

Kept with each location of a Gmail account, so that a message appearing in
another folder later (moved back to the Inbox, a folder reset) is placed
there by its id, never downloaded again; before, only the folders of one pass
knew each other's ids. Decimal text: the id is an unsigned 64-bit number. The
index holds Gmail locations only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

KNOWN = sa.text("gm_msgid IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("message_locations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gm_msgid", sa.String(length=20), nullable=True))
        batch_op.create_index(
            "ix_message_locations_gm_msgid",
            ["company_id", "account_id", "gm_msgid"],
            unique=False,
            postgresql_where=KNOWN,
            sqlite_where=KNOWN,
        )


def downgrade() -> None:
    with op.batch_alter_table("message_locations", schema=None) as batch_op:
        batch_op.drop_index("ix_message_locations_gm_msgid")
        batch_op.drop_column("gm_msgid")
