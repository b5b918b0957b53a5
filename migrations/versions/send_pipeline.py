"""send pipeline: sender per message, claim owner, worker heartbeats, circuit state, campaign idempotency key

Revision ID: send
Revises: contacts
"""

import sqlalchemy as sa
from alembic import op

revision = "send"
down_revision = "contacts"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("from_address", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_message_from_sent", ["from_address", "sent_at"], unique=False)
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_campaign_idempotency_key"), ["idempotency_key"])
    op.create_table(
        "worker_heartbeat",
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("beat_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_heartbeat")),
    )
    op.create_table(
        "sending_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sending_state")),
    )


def downgrade():
    op.drop_table("sending_state")
    op.drop_table("worker_heartbeat")
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_campaign_idempotency_key"), type_="unique")
        batch_op.drop_column("idempotency_key")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_from_sent")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("from_address")
