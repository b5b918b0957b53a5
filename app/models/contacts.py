"""Contacts (unique by phone) and the audiences they were uploaded in."""

from sqlalchemy import JSON, Index, func

from app.extensions import db
from app.models.vocabulary import utcnow


class Contact(db.Model):
    """A person, unique by E.164 phone; `fields` holds every CSV column."""

    id = db.Column(db.Integer, primary_key=True)
    phone = db.Column(db.String(32), unique=True, nullable=False)
    name = db.Column(db.String(200))
    fields = db.Column(JSON, nullable=False, default=dict)
    opted_out = db.Column(db.Boolean, nullable=False, default=False)
    opted_out_at = db.Column(db.DateTime)
    # Who opted the contact out or in, and how (`app.models.vocabulary.OPT_OUT_SOURCES`); None = a reply or the API.
    opted_out_by_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="SET NULL"))
    opted_out_via = db.Column(db.String(16))
    opted_in_at = db.Column(db.DateTime)
    opted_in_by_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="SET NULL"))
    # The name folded for search (`app.contacts.search.fold`): lower case, no accents, single spaces.
    search_name = db.Column(db.String(200))
    # Set when the contact was erased: its phone is then a placeholder and its number is in `suppressed_phone`.
    erased_at = db.Column(db.DateTime)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_contact_search_name", "search_name", "id"),
        # The run page's contacts search matches any part of a name or number: trigram indexes (PostgreSQL's
        # pg_trgm) answer it without reading every contact; on SQLite it stays one scan.
        Index(
            "ix_contact_name_trgm",
            func.lower(name).label("lower_name"),
            postgresql_using="gin",
            postgresql_ops={"lower_name": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
        Index("ix_contact_phone_trgm", phone, postgresql_using="gin", postgresql_ops={"phone": "gin_trgm_ops"}).ddl_if(
            dialect="postgresql"
        ),
    )


class SuppressedPhone(db.Model):
    """A number that must never be messaged again (its contact was erased), kept only as a SHA-256 hash."""

    phone_hash = db.Column(db.String(64), primary_key=True)
    reason = db.Column(db.String(32), nullable=False, default="erased")
    created_by_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="SET NULL"))
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)


class Audience(db.Model):
    """A named, saved list of contacts uploaded as CSV."""

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200), nullable=False)
    columns = db.Column(JSON, nullable=False, default=list)
    rejected = db.Column(JSON, nullable=False, default=list)
    total = db.Column(db.Integer, nullable=False, default=0)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)


class AudienceContact(db.Model):
    audience_id = db.Column(db.Integer, db.ForeignKey("audience.id", ondelete="CASCADE"), primary_key=True)
    contact_id = db.Column(db.Integer, db.ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
