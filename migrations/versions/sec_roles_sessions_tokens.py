"""roles, session tokens, disabled users; API token expiry and revocation

Revision ID: sec
Revises: send
"""
from alembic import op
import sqlalchemy as sa


revision = 'sec'
down_revision = 'send'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=16), server_default='editor', nullable=False))
        batch_op.add_column(sa.Column('session_token', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('disabled', sa.Boolean(), server_default='0', nullable=False))
    # Accounts made before roles could do everything: they stay admins. Each gets its own session token.
    op.execute("UPDATE \"user\" SET role = 'admin'")
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE \"user\" SET session_token = md5(random()::text || id::text)")
    else:
        op.execute("UPDATE \"user\" SET session_token = lower(hex(randomblob(16)))")
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('expires_at')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('disabled')
        batch_op.drop_column('session_token')
        batch_op.drop_column('role')
