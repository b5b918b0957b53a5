"""The words stored in status columns, defined once; and the one time format stored.

Contact states come from the engine (`app.engine.state`), which decides them.
"""

from datetime import UTC, datetime

from app.engine.state import ACTIVE_STATES, FINAL_STATES, STATES

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "STATES"]

# Run statuses: (`scheduled` ->) `preparing` -> `active` -> `completed` or `stopped`.
SCHEDULED = "scheduled"  # a run or campaign waiting for its `start_at`
LIVE_RUN_STATUSES = ("preparing", "active")
# A run in any other status may still send messages: its journey and audience must stay.
FINISHED_RUN_STATUSES = ("completed", "stopped", "failed")
RUN_STATUSES = (SCHEDULED,) + LIVE_RUN_STATUSES + FINISHED_RUN_STATUSES


# Message statuses. Not yet accepted by the provider:
UNSENT = ("queued", "sending")
MESSAGE_STATUSES = ("queued", "sending", "sent", "delivered", "read", "undelivered", "failed", "canceled")


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


def utcnow() -> datetime:
    """Naive UTC now, the one time format stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)
