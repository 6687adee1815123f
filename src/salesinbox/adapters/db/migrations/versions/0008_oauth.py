"""oauth: encrypted OAuth token sets of accounts that sign in with Google or Microsoft

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 14:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account_oauth_tokens',
    sa.Column('company_id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('access_token', sa.Text(), nullable=False),
    sa.Column('refresh_token', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('refresh_claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refresh_claimed_by', sa.String(length=200), nullable=True),
    sa.Column('needs_reauth', sa.Boolean(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['company_id', 'account_id'], ['email_accounts.company_id', 'email_accounts.id'], name=op.f('fk_account_oauth_tokens_company_id_account_id_email_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_account_oauth_tokens_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('company_id', 'account_id', name=op.f('pk_account_oauth_tokens'))
    )


def downgrade() -> None:
    op.drop_table('account_oauth_tokens')
