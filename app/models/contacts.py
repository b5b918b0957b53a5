"""Contacts (unique by phone) and the audiences they were uploaded in."""

from sqlalchemy import JSON

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
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)


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
