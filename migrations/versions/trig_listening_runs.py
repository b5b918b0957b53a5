"""runs: kind (audience or trigger) and an index on status, for keyword triggers' listening runs

Revision ID: trig
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "trig"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="audience", nullable=False))
        batch_op.create_index("ix_run_status", ["status"], unique=False)


def downgrade():
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_index("ix_run_status")
        batch_op.drop_column("kind")
