"""status callbacks stored before they are applied; inbound media

Revision ID: hooks
Revises: runs
Create Date: 2026-11-29 20:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'hooks'
down_revision = 'runs'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('status_callback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_callback')),
    sa.UniqueConstraint('sid', 'status', name=op.f('uq_status_callback_sid_status'))
    )
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('media', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.drop_column('media')

    op.drop_table('status_callback')
