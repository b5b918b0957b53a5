"""run.already_active: audience contacts a run left out because a run of the same journey had them active

Revision ID: active
Revises: scale
"""

import sqlalchemy as sa
from alembic import op

revision = "active"
down_revision = "scale"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("already_active", sa.Integer(), server_default="0", nullable=False))


def downgrade():
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_column("already_active")
