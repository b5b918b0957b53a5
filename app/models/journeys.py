"""Journeys: an editable draft plus immutable published versions."""

from sqlalchemy import JSON, UniqueConstraint

from app.extensions import db
from app.models.vocabulary import utcnow


class Journey(db.Model):
    """A journey: an editable draft plus immutable published versions."""

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200), nullable=False)
    draft = db.Column(JSON, nullable=False)
    draft_revision = db.Column(db.Integer, nullable=False, default=1)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    versions = db.relationship(
        "JourneyVersion",
        back_populates="journey",
        order_by="JourneyVersion.number",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class JourneyVersion(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    journey_id = db.Column(db.Integer, db.ForeignKey("journey.id", ondelete="CASCADE"), nullable=False)
    number = db.Column(db.Integer, nullable=False)
    definition = db.Column(JSON, nullable=False)
    note = db.Column(db.Text, nullable=False, default="")
    created_by_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="SET NULL"))
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    journey = db.relationship(Journey, back_populates="versions")

    __table_args__ = (UniqueConstraint("journey_id", "number"),)
