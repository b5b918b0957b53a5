"""contacts directory: search key, opt-out/in audit, erasure, suppressed phones, timeline and inbox indexes

Revision ID: contacts
Revises: trig
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "contacts"
down_revision = "trig"
branch_labels = None
depends_on = None


def _fold(name):
    """Same folding as app.contacts.search.fold (copied: a migration must not change when the app does)."""
    if not name:
        return None
    decomposed = unicodedata.normalize("NFKD", name)
    text = "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()
    return " ".join(text.split())[:200] or None


def upgrade():
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opted_out_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("opted_out_via", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("opted_in_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("opted_in_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("search_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_contact_opted_out_by_id_user"), "user", ["opted_out_by_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_contact_opted_in_by_id_user"), "user", ["opted_in_by_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index("ix_contact_search_name", ["search_name", "id"], unique=False)

    contact = sa.table("contact", sa.column("id", sa.Integer), sa.column("name", sa.String))
    connection = op.get_bind()
    rows = connection.execute(sa.select(contact.c.id, contact.c.name).where(contact.c.name.is_not(None))).all()
    if rows:
        connection.execute(
            sa.text("UPDATE contact SET search_name = :search_name WHERE id = :contact_id"),
            [{"search_name": _fold(name), "contact_id": contact_id} for contact_id, name in rows],
        )

    op.create_table(
        "suppressed_phone",
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["user.id"], name=op.f("fk_suppressed_phone_created_by_id_user"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("phone_hash", name=op.f("pk_suppressed_phone")),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_to_phone", ["to_phone", "id"], unique=False)
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_outcome_id", ["outcome", "id"], unique=False)


def downgrade():
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_outcome_id")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_to_phone")
    op.drop_table("suppressed_phone")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_search_name")
        batch_op.drop_constraint(batch_op.f("fk_contact_opted_in_by_id_user"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_contact_opted_out_by_id_user"), type_="foreignkey")
        batch_op.drop_column("erased_at")
        batch_op.drop_column("search_name")
        batch_op.drop_column("opted_in_by_id")
        batch_op.drop_column("opted_in_at")
        batch_op.drop_column("opted_out_via")
        batch_op.drop_column("opted_out_by_id")
