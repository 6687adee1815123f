"""inbox indexes: lists read in their order, unread locations apart, index-only probes

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 14:30:00.000000

Measured with 1,000,000 messages of one company (bench/README.md, capacity):
- conversations in the lists' order (newest first, nulls last, then id), so a
  page is read off the start of the index instead of sorting the company's
  every conversation;
- the unread (not \\Seen) locations in a small partial index, for the unread
  counts and the unread filter (the queries state the same predicate:
  tables.unseen);
- account and folder with a location's message id, and a message's id with
  its conversation id (both ways): which of the actor's folders hold a
  conversation, and which conversation an unread location is in, are
  answered from the indexes alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UNSEEN = sa.text("flags NOT LIKE '%\\Seen%' ESCAPE '/'")


def upgrade() -> None:
    # SQLite refuses NULLS LAST in an index and needs none: its NULLs sort first, so DESC puts them last.
    last = "last_message_at DESC" if op.get_bind().dialect.name == "sqlite" else "last_message_at DESC NULLS LAST"
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_company_last")
        batch_op.create_index(
            "ix_conversations_company_last", ["company_id", sa.text(last), sa.text("id DESC")], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_company_conversation")
        batch_op.create_index("ix_messages_company_conversation", ["company_id", "conversation_id", "id"], unique=False)
        batch_op.create_index(
            "ix_messages_company_id_conversation", ["company_id", "id", "conversation_id"], unique=False
        )
    with op.batch_alter_table("message_locations", schema=None) as batch_op:
        batch_op.drop_index("ix_message_locations_message")
        batch_op.create_index(
            "ix_message_locations_message", ["company_id", "message_id", "account_id", "folder_id"], unique=False
        )
        batch_op.create_index(
            "ix_message_locations_unseen",
            ["company_id", "account_id", "folder_id", "message_id"],
            unique=False,
            postgresql_where=UNSEEN,
            sqlite_where=UNSEEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("message_locations", schema=None) as batch_op:
        batch_op.drop_index("ix_message_locations_unseen")
        batch_op.drop_index("ix_message_locations_message")
        batch_op.create_index("ix_message_locations_message", ["company_id", "message_id"], unique=False)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_company_id_conversation")
        batch_op.drop_index("ix_messages_company_conversation")
        batch_op.create_index("ix_messages_company_conversation", ["company_id", "conversation_id"], unique=False)
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_company_last")
        batch_op.create_index("ix_conversations_company_last", ["company_id", "last_message_at"], unique=False)
