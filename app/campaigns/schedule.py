"""Campaign schedules and send windows: when each message of a campaign may go.

A campaign with `start_at` is stored `scheduled`; its messages are inserted
at once with `not_before` and the sweeper releases them (`runs.schedule`).
With a `send_window` the messages are spread over the open hours, each
contact's in its own zone: slots paced at the campaign channel's send rate
(global and per-sender limits), so a big campaign fills the window hour by
hour and what does not fit waits for the next opening instead of crowding
the first minute.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from app.campaigns.inputs import CampaignError
from app.engine.windows import is_open, next_opening, parse_window, window_problems
from app.extensions import db
from app.models import SCHEDULED, Campaign, Message, message_table, utcnow
from app.runs.preflight import send_rate
from app.runs.quiet_hours import window_zone
from app.runs.schedule import StartAtError, parse_start_at, start_at_from_form


def read_schedule(start_at, send_window) -> tuple[datetime | None, dict | None]:
    """Check `start_at` and `send_window` from a form or the API; CampaignError names the field."""
    try:
        moment = parse_start_at(start_at)
    except StartAtError as error:
        raise CampaignError("start_at", str(error)) from None
    problems = window_problems(send_window)
    if problems:
        raise CampaignError(problems[0][0], problems[0][1])
    return moment, parse_window(send_window).to_json() if send_window else None


def window_from_text(text: str | None):
    """A multipart form's `send_window` (JSON text) as a value for `read_schedule`; CampaignError if not JSON."""
    if not (text or "").strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise CampaignError("send_window", 'send_window must be JSON like {"start": "09:00", "end": "20:00"}') from None


def apply_schedule(campaign: Campaign, start_at: datetime | None, send_window: dict | None) -> None:
    """Set a campaign's schedule before its messages are queued (`scheduled` when it starts later)."""
    campaign.start_at, campaign.send_window = start_at, send_window
    if start_at is not None:
        campaign.status = SCHEDULED


def hold_times(campaign: Campaign, recipients: list[tuple[str, dict]], now: datetime) -> list[datetime | None]:
    """Each message's `not_before` for (phone, fields) recipients; None everywhere for a send-now campaign."""
    window = parse_window(campaign.send_window) if campaign.send_window else None
    if campaign.start_at is None and window is None:
        return [None] * len(recipients)
    begin = max(now, campaign.start_at or now)
    if window is None:
        return [begin] * len(recipients)
    rate = send_rate(current_app.config, campaign.channel)
    step = timedelta(seconds=1 / rate) if rate else timedelta(0)
    zones = [window_zone(window, fields, phone) for phone, fields in recipients]
    earliest_by_zone = {}
    for tz in zones:
        if tz.key not in earliest_by_zone:
            earliest_by_zone[tz.key] = next_opening(window, begin, tz)
    times: list[datetime | None] = [None] * len(recipients)
    cursor = begin
    for index in sorted(range(len(zones)), key=lambda i: earliest_by_zone[zones[i].key]):
        tz = zones[index]
        slot = max(cursor, earliest_by_zone[tz.key])
        if not is_open(window, slot, tz):
            slot = next_opening(window, slot, tz)
        times[index] = slot
        cursor = max(cursor, slot + step)
    return times


def start_now(campaign: Campaign) -> bool:
    """Start a scheduled campaign at once: its messages are spread again from now (zones from phones)."""
    now = utcnow()
    moved = db.session.execute(
        update(Campaign).where(Campaign.id == campaign.id, Campaign.status == SCHEDULED).values(start_at=now)
    ).rowcount
    if not moved:
        db.session.rollback()
        return False
    db.session.refresh(campaign)
    m = message_table.c
    rows = db.session.execute(
        select(m.id, m.to_phone).where(m.campaign_id == campaign.id, m.status == "queued").order_by(m.id)
    ).all()
    times = hold_times(campaign, [(row.to_phone, {}) for row in rows], now)
    if rows:
        db.session.execute(
            update(Message), [{"id": row.id, "not_before": at} for row, at in zip(rows, times, strict=True)]
        )
    db.session.commit()
    return True


FORM_FIELDS = (
    "name",
    "body",
    "channel",
    "start_at_local",
    "tz_offset",
    "window_start",
    "window_end",
    "window_timezone",
)


def form_values(form) -> dict:
    """The preview form's fields (text ones, and the window's checked days)."""
    values = {key: form.get(key, "") for key in FORM_FIELDS}
    values["window_days"] = form.getlist("window_days")
    return values


def schedule_from_form(form: dict, errors: dict) -> tuple[datetime | None, dict | None]:
    """The start and send window the preview form asks for; problems go into `errors` by field."""
    start_at = None
    try:
        start_at = start_at_from_form(form.get("start_at_local"), form.get("tz_offset"))
    except StartAtError as error:
        errors["start_at"] = str(error)
    if not (form.get("window_start") or form.get("window_end")):
        return start_at, None
    window = {"start": form.get("window_start") or "", "end": form.get("window_end") or ""}
    if form.get("window_days") and len(form["window_days"]) < 7:
        window["days"] = list(form["window_days"])
    if (form.get("window_timezone") or "contact") != "contact":
        window["timezone"] = form["window_timezone"].strip()
    problems = window_problems(window)
    for field, message in problems:
        errors[field] = message
    return start_at, None if problems else parse_window(window).to_json()
