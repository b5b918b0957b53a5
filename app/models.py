"""Database models: accounts, contacts, campaigns, the message log, journeys and runs.

Times are naive UTC (`utcnow()`), the same on SQLite and PostgreSQL. The
schema changes only through Flask-Migrate migrations under `migrations/`.
"""

import hashlib
import secrets
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import JSON, Index, UniqueConstraint
from sqlalchemy.orm import deferred
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db

FINAL_STATES = ("completed", "failed", "filtered", "stopped", "opted_out")
ACTIVE_STATES = ("active", "sending", "waiting", "delayed")
# Run statuses: `preparing` -> `active` -> `completed` or `stopped`.
LIVE_RUN_STATUSES = ("preparing", "active")
# A run in any other status may still send messages: its journey and audience must stay.
FINISHED_RUN_STATUSES = ("completed", "stopped", "failed")


def utcnow() -> datetime:
    """Naive UTC now, the one time format stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


class User(UserMixin, db.Model):
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(254), unique=True, nullable=False)
    password_hash = db.Column(db.String(255), nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class ApiToken(db.Model):
    """A bearer token for `/api/`; only its SHA-256 is stored."""

    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    token_hash = db.Column(db.String(64), unique=True, nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    last_used_at = db.Column(db.DateTime)
    user = db.relationship(User)

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, user: User) -> tuple["ApiToken", str]:
        """Create a token row for `user`; return it with the plain token (shown once)."""
        token = "jd_" + secrets.token_urlsafe(32)
        return cls(user=user, token_hash=cls.hash(token)), token


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


class Message(db.Model):
    """The log row of one outbound message, from queued to its final status."""

    id = db.Column(db.Integer, primary_key=True)
    campaign_id = db.Column(db.Integer, db.ForeignKey("campaign.id", ondelete="CASCADE"))
    participation_id = db.Column(db.Integer, db.ForeignKey("participation.id", ondelete="SET NULL"))
    node_id = db.Column(db.String(64))
    idempotency_key = db.Column(db.String(120), unique=True)
    contact_id = db.Column(db.Integer, db.ForeignKey("contact.id", ondelete="SET NULL"))
    to_phone = db.Column(db.String(32), nullable=False)
    channel = db.Column(db.String(16), nullable=False)
    body = db.Column(db.Text)
    content_sid = db.Column(db.String(64))
    content_variables = db.Column(JSON)
    media_url = db.Column(db.Text)
    status = db.Column(db.String(16), nullable=False, default="queued")
    sid = db.Column(db.String(64), unique=True)
    error_code = db.Column(db.Integer)
    error_message = db.Column(db.Text)
    attempts = db.Column(db.Integer, nullable=False, default=0)
    dry_run = db.Column(db.Boolean, nullable=False, default=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    sent_at = db.Column(db.DateTime)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)
    next_attempt_at = db.Column(db.DateTime)

    __table_args__ = (
        Index("ix_message_campaign_status", "campaign_id", "status"),
        Index("ix_message_participation", "participation_id"),
        Index("ix_message_status_next_attempt", "status", "next_attempt_at"),
    )


class MessageEvent(db.Model):
    """One status a message reached (status callbacks and our own send results)."""

    id = db.Column(db.Integer, primary_key=True)
    message_id = db.Column(db.Integer, db.ForeignKey("message.id", ondelete="CASCADE"), nullable=False)
    status = db.Column(db.String(16), nullable=False)
    error_code = db.Column(db.Integer)
    at = db.Column(db.DateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("message_id", "status"),)


class InboundMessage(db.Model):
    """Every inbound message Twilio delivered, matched to a participation or not."""

    id = db.Column(db.Integer, primary_key=True)
    sid = db.Column(db.String(64), unique=True, nullable=False)
    from_phone = db.Column(db.String(32), nullable=False)
    to_address = db.Column(db.String(64))
    channel = db.Column(db.String(16), nullable=False, default="sms")
    body = db.Column(db.Text, nullable=False, default="")
    payload = db.Column(db.String(256))
    contact_id = db.Column(db.Integer, db.ForeignKey("contact.id", ondelete="SET NULL"))
    participation_id = db.Column(db.Integer, db.ForeignKey("participation.id", ondelete="SET NULL"))
    outcome = db.Column(db.String(32), nullable=False, default="received")
    received_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    __table_args__ = (Index("ix_inbound_from_phone", "from_phone"),)


class Journey(db.Model):
    """A journey: an editable draft plus immutable published versions."""

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200), nullable=False)
    draft = db.Column(JSON, nullable=False)
    draft_revision = db.Column(db.Integer, nullable=False, default=1)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    versions = db.relationship(
        "JourneyVersion", back_populates="journey", order_by="JourneyVersion.number",
        cascade="all, delete-orphan", passive_deletes=True,
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


class Run(db.Model):
    """One start of a published journey version for an audience."""

    id = db.Column(db.Integer, primary_key=True)
    journey_id = db.Column(db.Integer, db.ForeignKey("journey.id", ondelete="CASCADE"), nullable=False)
    version_id = db.Column(db.Integer, db.ForeignKey("journey_version.id", ondelete="CASCADE"), nullable=False)
    audience_id = db.Column(db.Integer, db.ForeignKey("audience.id", ondelete="SET NULL"))
    status = db.Column(db.String(16), nullable=False, default="active")
    total = db.Column(db.Integer, nullable=False, default=0)
    dry_run = db.Column(db.Boolean, nullable=False, default=False)
    created_by_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="SET NULL"))
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    finished_at = db.Column(db.DateTime)
    journey = db.relationship(Journey)
    version = db.relationship(JourneyVersion)
    audience = db.relationship(Audience)


class Participation(db.Model):
    """One contact's place in one run: the engine's state, stored.

    `lock_version` is a compare-and-set counter: a writer that read an older
    version must not save, so two workers never both advance a contact.
    """

    id = db.Column(db.Integer, primary_key=True)
    run_id = db.Column(db.Integer, db.ForeignKey("run.id", ondelete="CASCADE"), nullable=False)
    contact_id = db.Column(db.Integer, db.ForeignKey("contact.id", ondelete="CASCADE"), nullable=False)
    state = db.Column(db.String(16), nullable=False, default="active")
    node_id = db.Column(db.String(64))
    engine_state = db.Column(JSON, nullable=False, default=dict)
    wake_at = db.Column(db.DateTime)
    error = db.Column(db.Text)
    lock_version = db.Column(db.Integer, nullable=False, default=0)
    started_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    run = db.relationship(Run)
    contact = db.relationship(Contact)

    __table_args__ = (
        UniqueConstraint("run_id", "contact_id"),
        # Covers the run page's grouped counts (state x node) without touching the rows.
        Index("ix_participation_run_state", "run_id", "state", "node_id"),
        Index("ix_participation_run_node", "run_id", "node_id"),
        Index("ix_participation_wake_at", "wake_at"),
        Index("ix_participation_contact_state", "contact_id", "state"),
    )


class Step(db.Model):
    """One entry of a participation's history, for the timeline and the per-node counts.

    `kind` and its `detail`: `enter` {visit} a node was entered; `edge` {from,
    to, index, label} an edge was taken; `message` {message_id, status,
    channel, missing} a message was queued; `outcome` {ok, error, message_id,
    sid} its send was accepted or failed for good; `reply` {text, payload,
    matched, inbound_id}; `api` {method, url, status, duration_ms, error};
    `timer` {visit} a delay or timeout fired; `set` {vars}; `finish` {status,
    reason} the contact reached a final state; `ignored` {reason}; `error`
    {message}. Written by `app.runner` from the engine's trail.
    """

    id = db.Column(db.Integer, primary_key=True)
    participation_id = db.Column(
        db.Integer, db.ForeignKey("participation.id", ondelete="CASCADE"), nullable=False
    )
    run_id = db.Column(db.Integer, db.ForeignKey("run.id", ondelete="CASCADE"), nullable=False)
    kind = db.Column(db.String(16), nullable=False)
    node_id = db.Column(db.String(64))
    detail = db.Column(JSON, nullable=False, default=dict)
    at = db.Column(db.DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        Index("ix_step_participation", "participation_id", "id"),
        Index("ix_step_run_kind_node", "run_id", "kind", "node_id"),
        # The run page reads a run's newest steps of a kind (counts since a mark, latest unmatched replies).
        Index("ix_step_run_kind_id", "run_id", "kind", "id"),
    )
