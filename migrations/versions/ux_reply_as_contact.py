"""inbound_message.entered_by_id: replies an operator typed on a contact's behalf

Revision ID: ux
Revises: sched
"""

import sqlalchemy as sa
from alembic import op

revision = "ux"
down_revision = "sched"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entered_by_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_inbound_message_entered_by_id_user"), "user", ["entered_by_id"], ["id"], ondelete="SET NULL"
        )


def downgrade():
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_inbound_message_entered_by_id_user"), type_="foreignkey")
        batch_op.drop_column("entered_by_id")
