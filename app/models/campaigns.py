"""Bulk campaigns: one templated message to every row of a CSV."""

from sqlalchemy import JSON, Index
from sqlalchemy.orm import deferred

from app.extensions import db
from app.models.vocabulary import utcnow


class Campaign(db.Model):
    """One templated message sent to every row of a CSV."""

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200), nullable=False)
    body = db.Column(db.Text, nullable=False)
    channel = db.Column(db.String(16), nullable=False, default="sms")
    status = db.Column(db.String(16), nullable=False, default="queued")
    # Sent/delivered/failed counts are not stored: `messaging.campaign_counts()` counts the message log.
    total = db.Column(db.Integer, nullable=False, default=0)
    rejected = db.Column(JSON, nullable=False, default=list)
    columns = db.Column(JSON, nullable=False, default=list)
    dry_run = db.Column(db.Boolean, nullable=False, default=False)
    # A draft keeps the parsed upload ({"phone_column", "rows"}) between preview and send; cleared on send.
    draft = deferred(db.Column(JSON))
    created_by_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="SET NULL"))
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    finished_at = db.Column(db.DateTime)
    # Deleting hides a sent campaign but keeps its message log (what was sent to whom stays on record).
    deleted_at = db.Column(db.DateTime)
    # A client's `Idempotency-Key` (prefixed with its user id): a retried send finds this campaign.
    idempotency_key = db.Column(db.String(200), unique=True)
    # A `scheduled` campaign starts at `start_at` (naive UTC); `send_window` (as in journey/v1) spreads its
    # messages over the open hours (`Message.not_before`).
    start_at = db.Column(db.DateTime)
    send_window = db.Column(JSON)

    __table_args__ = (Index("ix_campaign_status_start_at", "status", "start_at"),)
