"""Send windows in journey runs: a message due outside its window waits, durably, as `delayed`.

The runner asks `held_until` when it turns a `SendMessage` into a message
row: outside the window the row gets `not_before` = the window's next
opening (in the contact's zone), it is not enqueued, and the participation is
stored `delayed` with `wake_at` at that opening (the engine's own state stays
`sending`: the contact still waits for that message's outcome). The sweeper
calls `schedule.release_due`, which enqueues due messages (journey and campaign
alike) and turns their participations back to `sending`; both are in the
database, so a restart or a flushed Redis neither loses nor delays one.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from app.contacts.timezones import contact_zone
from app.engine import Definition
from app.engine.windows import CONTACT, SendWindow, next_opening, zone


def window_zone(window: SendWindow, fields: dict | None, phone: str | None):
    """The zone a window is read in for one contact: the window's own, or the contact's."""
    if window.timezone != CONTACT:
        return zone(window.timezone)
    return contact_zone(fields, phone, current_app.config.get("DEFAULT_TIMEZONE") or "UTC")


def held_until(journey: Definition, row, now: datetime) -> datetime | None:
    """When this contact's window next opens, if a message to it must wait (None: send now)."""
    window = journey.send_window
    if window is None:
        return None
    opening = next_opening(window, now, window_zone(window, row.fields, row.phone))
    return opening if opening > now else None
