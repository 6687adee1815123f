"""sync leases: which sync process keeps which account in sync (fencing epoch), and the live sync processes

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 14:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sync_leases',
    sa.Column('company_id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=True),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['company_id', 'account_id'], ['email_accounts.company_id', 'email_accounts.id'], name=op.f('fk_sync_leases_company_id_account_id_email_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_sync_leases_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('company_id', 'account_id', name=op.f('pk_sync_leases'))
    )
    with op.batch_alter_table('sync_leases', schema=None) as batch_op:
        batch_op.create_index('ix_sync_leases_expires_at', ['expires_at'], unique=False)
    op.create_table('sync_workers',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sync_workers'))
    )
    with op.batch_alter_table('sync_workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_workers_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sync_workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_workers_expires_at'))
    op.drop_table('sync_workers')
    with op.batch_alter_table('sync_leases', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_leases_expires_at')
    op.drop_table('sync_leases')
