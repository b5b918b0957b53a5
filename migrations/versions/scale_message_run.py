"""message.run_id: a run's message counts read an index, not the whole log; indexes for timelines and search

A run's replies typed by operators are read by participation; the run page's contacts search matches any
part of a name or number (PostgreSQL: pg_trgm trigram indexes, a trusted extension any database owner
may create).

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
    op.create_index("ix_inbound_participation", "inbound_message", ["participation_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_contact_name_trgm ON contact USING gin (lower(name) gin_trgm_ops)")
        op.execute("CREATE INDEX ix_contact_phone_trgm ON contact USING gin (phone gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_contact_phone_trgm", table_name="contact")
        op.drop_index("ix_contact_name_trgm", table_name="contact")
    op.drop_index("ix_inbound_participation", table_name="inbound_message")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_run_status")
        batch_op.drop_constraint(batch_op.f("fk_message_run_id_run"), type_="foreignkey")
        batch_op.drop_column("run_id")
