"""schedules and send windows: start_at on runs and campaigns, a campaign's send_window, a message's not_before

Revision ID: sched
Revises: hooks
"""

import sqlalchemy as sa
from alembic import op

revision = "sched"
down_revision = "hooks"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("start_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("scheduled_contact_ids", sa.JSON(), nullable=True))
        batch_op.create_index("ix_run_status_start_at", ["status", "start_at"], unique=False)
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(sa.Column("start_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("send_window", sa.JSON(), nullable=True))
        batch_op.create_index("ix_campaign_status_start_at", ["status", "start_at"], unique=False)
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_message_not_before", ["not_before"], unique=False)


def downgrade():
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_not_before")
        batch_op.drop_column("not_before")
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_status_start_at")
        batch_op.drop_column("send_window")
        batch_op.drop_column("start_at")
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_index("ix_run_status_start_at")
        batch_op.drop_column("scheduled_contact_ids")
        batch_op.drop_column("start_at")
