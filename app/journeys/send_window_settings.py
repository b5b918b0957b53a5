"""The designer's journey settings: the send window (quiet hours) fields.

Pure (no Flask): reads any form with `get` and `getlist` into the journey's
`send_window` key. What is typed is stored as typed (a draft may hold a bad
value); the engine's validation names the field (`send_window.start`, …).
"""

from __future__ import annotations

from app.engine.windows import CONTACT, DAYS


def apply_send_window(doc: dict, form) -> None:
    """Set or clear `send_window` from the fields `window_start`, `window_end`, `window_days`, `window_timezone`."""
    start, end = (form.get("window_start") or "").strip(), (form.get("window_end") or "").strip()
    if not start and not end:
        doc.pop("send_window", None)
        return
    window = {"start": start, "end": end}
    days = [day for day in DAYS if day in form.getlist("window_days")]
    if days and len(days) < len(DAYS):
        window["days"] = days
    zone = (form.get("window_timezone") or "").strip()
    if zone and zone != CONTACT:
        window["timezone"] = zone
    doc["send_window"] = window
