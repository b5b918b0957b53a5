"""message.run_id: a run's message counts read an index instead of joining the whole log to participation

Revision ID: scale
Revises: ux
"""

import sqlalchemy as sa
from alembic import op

revision = "scale"
down_revision = "ux"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_message_run_id_run"), "run", ["run_id"], ["id"], ondelete="SET NULL")
    op.execute(
        "UPDATE message SET run_id = (SELECT participation.run_id FROM participation"
        " WHERE participation.id = message.participation_id) WHERE participation_id IS NOT NULL"
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_run_status", ["run_id", "status"], unique=False)


def downgrade():
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_run_status")
        batch_op.drop_constraint(batch_op.f("fk_message_run_id_run"), type_="foreignkey")
        batch_op.drop_column("run_id")
