"""The message log: every outbound message with its statuses, and every inbound one."""

from sqlalchemy import JSON, Index, UniqueConstraint

from app.extensions import db
from app.models.vocabulary import RECEIVED, utcnow


class Message(db.Model):
    """The log row of one outbound message, from queued to its final status."""

    id = db.Column(db.Integer, primary_key=True)
    campaign_id = db.Column(db.Integer, db.ForeignKey("campaign.id", ondelete="CASCADE"))
    participation_id = db.Column(db.Integer, db.ForeignKey("participation.id", ondelete="SET NULL"))
    # The run of a journey message (its participation's): a run's message counts read an index, not the log.
    run_id = db.Column(db.Integer, db.ForeignKey("run.id", ondelete="SET NULL"))
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
    # The sender address it went (or goes) out from: a contact keeps one sender of a pool per channel.
    from_address = db.Column(db.String(64))
    # The worker process holding it `sending` (its heartbeat tells a dead claim from a slow one).
    claimed_by = db.Column(db.String(64))
    # Not to be sent before this (a schedule or a send window); the sweeper enqueues it when due.
    not_before = db.Column(db.DateTime)

    __table_args__ = (
        Index("ix_message_campaign_status", "campaign_id", "status"),
        Index("ix_message_participation", "participation_id"),
        Index("ix_message_run_status", "run_id", "status"),
        Index("ix_message_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_message_from_sent", "from_address", "sent_at"),
        Index("ix_message_not_before", "not_before"),
        # A contact's timeline reads its messages by number, across runs and campaigns.
        Index("ix_message_to_phone", "to_phone", "id"),
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
    outcome = db.Column(db.String(32), nullable=False, default=RECEIVED)
    received_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    # Set when an operator typed the reply on the contact's behalf (reply as a contact), else Twilio sent it.
    entered_by_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="SET NULL"))
    # Media Twilio received with it (MMS, WhatsApp): [{"url", "content_type"}, …] in Twilio's order; None if none.
    media = db.Column(JSON)

    __table_args__ = (
        Index("ix_inbound_from_phone", "from_phone"),
        Index("ix_inbound_participation", "participation_id"),
        # The inbox lists a chosen outcome newest first; the sweeper looks for those left `received`.
        Index("ix_inbound_outcome_id", "outcome", "id"),
    )

    @property
    def media_items(self) -> list[dict]:
        """The attached media as `{"url", "content_type"}` dicts (empty when there were none)."""
        return list(self.media or [])


class StatusCallback(db.Model):
    """A Twilio status callback stored as it arrived, waiting to be applied to the message log.

    The webhook only inserts (one row per sid and status: repeats are
    ignored) and answers; `app.sending.callbacks.apply_pending` applies the
    rows in bulk and deletes them in the same transaction, so each is applied
    once. A row whose sid is not in the log yet (the send job has not stored
    it) stays parked here until it is, or until it is too old to wait for.
    """

    id = db.Column(db.Integer, primary_key=True)
    sid = db.Column(db.String(64), nullable=False)
    status = db.Column(db.String(16), nullable=False)
    error_code = db.Column(db.Integer)
    received_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("sid", "status"),)


class WorkerHeartbeat(db.Model):
    """A worker process's last sign of life: its claims are only taken over once it stops beating."""

    worker_id = db.Column(db.String(64), primary_key=True)
    beat_at = db.Column(db.DateTime, nullable=False, default=utcnow)


class SendingState(db.Model):
    """Small durable facts of the send pipeline (the Twilio circuit breaker), mirrored in Redis."""

    key = db.Column(db.String(64), primary_key=True)
    value = db.Column(JSON, nullable=False, default=dict)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow)
