"""The words stored in status columns, defined once; and the one time format stored.

Contact states come from the engine (`app.engine.state`), which decides them.
"""

from datetime import UTC, datetime

from app.engine.state import ACTIVE_STATES, FINAL_STATES, STATES

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "STATES"]

# Run statuses: `preparing` -> `active` -> `completed` or `stopped`.
LIVE_RUN_STATUSES = ("preparing", "active")
# A run in any other status may still send messages: its journey and audience must stay.
FINISHED_RUN_STATUSES = ("completed", "stopped", "failed")
RUN_STATUSES = LIVE_RUN_STATUSES + FINISHED_RUN_STATUSES


def utcnow() -> datetime:
    """Naive UTC now, the one time format stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)
