"""drafts: messages being written, kept here first and then in the server's Drafts folder

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 11:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('drafts',
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('to_addresses', sa.Text(), nullable=False),
    sa.Column('cc_addresses', sa.Text(), nullable=False),
    sa.Column('bcc_addresses', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=True),
    sa.Column('in_reply_to_id', sa.Uuid(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('server_state', sa.String(length=20), nullable=False),
    sa.Column('server_folder', sa.String(length=500), nullable=True),
    sa.Column('server_uid', sa.BigInteger(), nullable=True),
    sa.Column('server_uidvalidity', sa.BigInteger(), nullable=True),
    sa.Column('server_message_id', sa.String(length=998), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('company_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['company_id', 'account_id'], ['email_accounts.company_id', 'email_accounts.id'], name=op.f('fk_drafts_company_id_account_id_email_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['company_id', 'user_id'], ['users.company_id', 'users.id'], name=op.f('fk_drafts_company_id_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_drafts_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('company_id', 'id', name=op.f('pk_drafts'))
    )
    with op.batch_alter_table('drafts', schema=None) as batch_op:
        batch_op.create_index('ix_drafts_company_account', ['company_id', 'account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('drafts', schema=None) as batch_op:
        batch_op.drop_index('ix_drafts_company_account')
    op.drop_table('drafts')
