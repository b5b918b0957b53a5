"""runs: final counts, archive path and time of pruned runs

Revision ID: runs
Revises: sec
Create Date: 2026-11-29 20:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "runs"
down_revision = "sec"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("final_counts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("archive_path", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("pruned_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_column("pruned_at")
        batch_op.drop_column("archive_path")
        batch_op.drop_column("final_counts")
