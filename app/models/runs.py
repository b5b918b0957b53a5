"""Runs of a journey version, each contact's place in one, and its history."""

from sqlalchemy import JSON, Index, UniqueConstraint

from app.extensions import db
from app.models.vocabulary import utcnow


class Run(db.Model):
    """One start of a published journey version for an audience, or the standing run its keyword triggers fill."""

    id = db.Column(db.Integer, primary_key=True)
    journey_id = db.Column(db.Integer, db.ForeignKey("journey.id", ondelete="CASCADE"), nullable=False)
    version_id = db.Column(db.Integer, db.ForeignKey("journey_version.id", ondelete="CASCADE"), nullable=False)
    audience_id = db.Column(db.Integer, db.ForeignKey("audience.id", ondelete="SET NULL"))
    status = db.Column(db.String(16), nullable=False, default="active")
    kind = db.Column(db.String(16), nullable=False, default="audience", server_default="audience")
    total = db.Column(db.Integer, nullable=False, default=0)
    # Contacts it left out when it started: active in a run of the same journey then (one run at a time).
    already_active = db.Column(db.Integer, nullable=False, default=0, server_default="0")
    dry_run = db.Column(db.Boolean, nullable=False, default=False)
    created_by_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="SET NULL"))
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    finished_at = db.Column(db.DateTime)
    # A `scheduled` run starts at `start_at` (naive UTC, fired by the sweeper); an inline-contacts one keeps
    # its contacts' ids until then.
    start_at = db.Column(db.DateTime)
    scheduled_contact_ids = db.Column(JSON)
    # Set by `app.runs.prune` before a finished run's history is deleted: its counts as they were, then read
    # instead of the (deleted) steps; where its results were archived; when the deletion finished.
    final_counts = db.Column(JSON)
    archive_path = db.Column(db.String(500))
    pruned_at = db.Column(db.DateTime)
    journey = db.relationship("Journey")
    version = db.relationship("JourneyVersion")
    audience = db.relationship("Audience")

    __table_args__ = (
        # Every inbound message that reaches no waiting contact looks up the `listening` runs.
        Index("ix_run_status", "status"),
        Index("ix_run_status_start_at", "status", "start_at"),
    )


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
    run = db.relationship("Run")
    contact = db.relationship("Contact")

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
    {message}. Written by `app.runs.runner` from the engine's trail.
    """

    id = db.Column(db.Integer, primary_key=True)
    participation_id = db.Column(db.Integer, db.ForeignKey("participation.id", ondelete="CASCADE"), nullable=False)
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
