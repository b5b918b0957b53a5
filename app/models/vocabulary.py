"""The words stored in status columns, defined once; and the one time format stored.

Contact states come from the engine (`app.engine.state`), which decides them.
"""

from datetime import UTC, datetime

from app.engine.state import ACTIVE_STATES, FINAL_STATES, STATES, TIMER_STATES, WORKING_STATES

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "STATES", "TIMER_STATES", "WORKING_STATES"]

# Run statuses: (`scheduled` ->) `preparing` -> `active` -> `completed` or `stopped`; a journey's keyword
# triggers collect contacts into its one standing `listening` run (stopping it turns the triggers off).
SCHEDULED = "scheduled"  # a run or campaign waiting for its `start_at`
LIVE_RUN_STATUSES = ("preparing", "active", "listening")
# How a run got its contacts: an audience (or inline list) at its start, or keyword triggers over time.
RUN_KINDS = ("audience", "trigger")
# A run in any other status may still send messages: its journey and audience must stay.
FINISHED_RUN_STATUSES = ("completed", "stopped", "failed")
RUN_STATUSES = (SCHEDULED,) + LIVE_RUN_STATUSES + FINISHED_RUN_STATUSES


# Message statuses. Not yet accepted by the provider:
UNSENT = ("queued", "sending")
MESSAGE_STATUSES = ("queued", "sending", "sent", "delivered", "read", "undelivered", "failed", "canceled")
# Count buckets, cumulative (a status only moves forward): reached the phone, never will.
DELIVERED_STATUSES = ("delivered", "read")
FAILED_STATUSES = ("failed", "undelivered")
# A message in one of these is over without being delivered: the contact moves on as for a failure.
NOT_DELIVERED_STATUSES = (*FAILED_STATUSES, "canceled")


# Our own statuses and Twilio's, in the order a message moves through them; it never moves back.
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3, "read": 4}


# Twilio callback statuses -> ours (Twilio's queued/accepted/sending all mean "accepted, on its way").
CALLBACK_STATUSES = {
    "queued": "sent",
    "accepted": "sent",
    "scheduled": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "failed": "failed",
}


# Inbound message outcomes: `received` until it is handled (a reply routed, a keyword applied), then one of the rest.
RECEIVED = "received"
MATCHED = "matched"  # a waiting participation took an edge (its fallback included)
UNMATCHED = "unmatched"  # a waiting participation got it but nothing matched: still waiting
NOT_WAITING = "not_waiting"  # a known contact with no participation waiting for a reply
UNKNOWN_CONTACT = "unknown_contact"
TRIGGERED = "triggered"  # it started a triggered journey run
OPTED_OUT = "opted_out"  # STOP and the like
OPTED_IN = "opted_in"  # START / UNSTOP
INBOUND_OUTCOMES = (MATCHED, UNMATCHED, NOT_WAITING, UNKNOWN_CONTACT, TRIGGERED, OPTED_OUT, OPTED_IN)


def iso_z(moment: datetime | None) -> str | None:
    """A stored time as every JSON answer writes it: ISO 8601, UTC, with `Z` (None stays None)."""
    return moment.isoformat() + "Z" if moment is not None else None


def utcnow() -> datetime:
    """Naive UTC now, the one time format stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


# Operator roles, least to most powerful: a viewer reads, an editor changes journeys, audiences, runs and
# campaigns, an admin also manages users, API tokens and the job dashboard (/rq).
ROLES = ("viewer", "editor", "admin")
# How a contact came to be opted out (`Contact.opted_out_via`).
OPT_OUT_SOURCES = ("reply", "operator", "api", "carrier", "suppressed", "erased")
