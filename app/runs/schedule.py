"""Scheduled starts and due messages: what the sweeper fires when its time comes.

A run or campaign with `start_at` is stored `scheduled`; `start_due` (called
by every sweep) claims the due ones with one guarded UPDATE each, so two
sweepers never start one twice, and a restart or a flushed Redis neither
loses nor delays one (the time is in the database). `release_due` enqueues
the messages whose `not_before` has come (send windows, spread campaigns).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import SCHEDULED, Campaign, Run, message_table, participation_table, utcnow
from app.queues import get_redis
from app.runs.lifecycle import _lock_in_id_order
from app.runs.runner import _enqueue, _lease
from app.sending import messaging

RELEASE_LIMIT = 5000  # due messages released per sweep


class StartAtError(ValueError):
    """A `start_at` that cannot be used; the message names the field."""


def parse_start_at(value, now: datetime | None = None, field: str = "start_at") -> datetime | None:
    """ISO 8601 with an offset, in the future -> naive UTC (None for none); StartAtError otherwise."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise StartAtError(f"{field} must be an ISO 8601 date-time with an offset, like 2026-12-01T09:00:00+01:00")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise StartAtError(f"{field} {value!r} is not an ISO 8601 date-time (like 2026-12-01T09:00:00+01:00)") from None
    if moment.tzinfo is None:
        raise StartAtError(f"{field} {value!r} needs a UTC offset (like +01:00 or Z)")
    moment = moment.astimezone(UTC).replace(tzinfo=None)
    if moment <= (now or utcnow()):
        raise StartAtError(f"{field} {value!r} is in the past: give a time in the future")
    return moment


def start_due(now: datetime) -> dict[str, int]:
    """Start the scheduled runs and campaigns whose `start_at` has come; returns how many of each."""
    runs = list(
        db.session.scalars(
            update(Run).where(Run.status == SCHEDULED, Run.start_at <= now).values(status="preparing").returning(Run.id)
        )
    )
    campaigns = db.session.execute(
        update(Campaign)
        .where(Campaign.status == SCHEDULED, Campaign.start_at <= now, Campaign.deleted_at.is_(None))
        .values(status="queued")
        .returning(Campaign.id)
    ).all()
    db.session.commit()
    if runs:
        lease = max(1, int(_lease().total_seconds()))
        redis = get_redis()
        for run_id in runs:  # the sweeper's own "lost prepare_run" check waits a lease before redoing it
            redis.set(f"jd:runner:preparing:{run_id}", "1", ex=lease)
        _enqueue("prepare_run", [(run_id,) for run_id in runs], timeout=3600)
    return {"scheduled_runs": len(runs), "scheduled_campaigns": len(campaigns)}


def start_now(run: Run) -> bool:
    """Bring a scheduled run's start to now; the next sweep (within a second) starts it."""
    moved = db.session.execute(
        update(Run).where(Run.id == run.id, Run.status == SCHEDULED).values(start_at=utcnow())
    ).rowcount
    db.session.commit()
    return bool(moved)


def release_due(now: datetime, limit: int = RELEASE_LIMIT) -> int:
    """Enqueue the messages whose `not_before` has come; their participations go back to `sending`.

    Locks participations before messages (the order `stop_run` uses), claims
    the messages with one guarded UPDATE (a second sweeper finds nothing),
    and stamps `next_attempt_at` so a lost send job is re-enqueued by
    `recovery.requeue_stale`.
    """
    m, p = message_table.c, participation_table.c
    due = db.session.execute(
        select(m.id, m.participation_id)
        .where(m.status == "queued", m.not_before <= now)
        .order_by(m.not_before, m.id)
        .limit(limit)
    ).all()
    if not due:
        db.session.commit()
        return 0
    participation_ids = sorted({row.participation_id for row in due if row.participation_id is not None})
    if participation_ids:
        _lock_in_id_order(p.id.in_(participation_ids))
    released = list(
        db.session.scalars(
            update(message_table)
            .where(m.id.in_([row.id for row in due]), m.status == "queued", m.not_before <= now)
            .values(not_before=None, next_attempt_at=now, updated_at=now)
            .returning(m.id)
        )
    )
    if participation_ids:
        db.session.execute(
            update(participation_table)
            .where(p.id.in_(participation_ids), p.state == "delayed")
            .values(state="sending", wake_at=now + _lease(), lock_version=p.lock_version + 1, updated_at=now)
        )
    db.session.commit()
    messaging.enqueue_messages(sorted(released))
    return len(released)


def starts_in(start_at: datetime | None, now: datetime | None = None) -> str:
    """ "2 h 10 min", "3 d 4 h", "less than a minute": how long until a scheduled start."""
    if start_at is None:
        return ""
    seconds = int((start_at - (now or utcnow())).total_seconds())
    if seconds < 60:
        return "less than a minute"
    minutes = seconds // 60
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def scheduled_runs(limit: int = 20) -> list[Run]:
    return list(
        db.session.scalars(select(Run).where(Run.status == SCHEDULED).order_by(Run.start_at, Run.id).limit(limit))
    )


def start_at_from_form(local_value: str | None, offset_minutes: str | None, field: str = "start_at") -> datetime | None:
    """A `datetime-local` value and the browser's UTC offset for it (minutes east) -> naive UTC, checked."""
    if not (local_value or "").strip():
        return None
    try:
        minutes = int(offset_minutes or "0")
    except ValueError:
        raise StartAtError(f"{field}: the time zone offset {offset_minutes!r} is not a number of minutes") from None
    sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
    value = f"{local_value.strip()}{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return parse_start_at(value, field=field)


def window_waits(run_id: int) -> tuple[int, datetime | None]:
    """How many of a run's contacts wait for their send window, and when it opens for most of them."""
    p = participation_table.c
    m = message_table.c
    rows = db.session.execute(
        select(m.not_before, func.count())
        .join(participation_table, participation_table.c.id == m.participation_id)
        .where(p.run_id == run_id, p.state == "delayed", m.status == "queued", m.not_before.is_not(None))
        .group_by(m.not_before)
    ).all()
    if not rows:
        return 0, None
    by_minute: dict[datetime, int] = {}
    for opening, count in rows:
        minute = opening.replace(second=0, microsecond=0)
        by_minute[minute] = by_minute.get(minute, 0) + count
    return sum(by_minute.values()), max(by_minute, key=lambda minute: (by_minute[minute], -minute.timestamp()))
