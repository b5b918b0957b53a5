"""The Twilio circuit breaker: during an outage sending pauses, probes with backoff, resumes by itself.

A group of send results with outage failures (HTTP 5xx, Twilio unreachable
or silent) and no success *opens* the breaker. While open, send jobs send
nothing: their messages go back to `queued` (no attempt counted) until the
next probe time; one job at a time sends a single message as the probe. A
probe that is accepted *closes* the breaker and re-enqueues what waited; one
that fails doubles the wait (`TWILIO_PROBE_BACKOFF`, seconds). So an outage of
minutes fails no message; permanent errors (4xx) never open it.

The state lives in the database (`SendingState`, the truth, read by pages
even when Redis is down) and is mirrored in Redis for the probe lock.
"""

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import SendingState, utcnow
from app.queues import get_redis

logger = logging.getLogger("app.sending.breaker")

STATE_KEY = "twilio_breaker"
PROBE_LOCK_KEY = "jd:twilio:probe"
DEFAULT_BACKOFF = (2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


def is_outage(result) -> bool:
    """A failure that says Twilio is down or unreachable, not that this message is wrong."""
    if result.ok or not result.transient:
        return False
    return result.http_status is None or result.http_status >= 500


def backoff(config=None) -> list[float]:
    raw = (config or current_app.config).get("TWILIO_PROBE_BACKOFF")
    if not raw:
        return list(DEFAULT_BACKOFF)
    return [float(part) for part in str(raw).split(",") if part.strip()]


def state() -> dict | None:
    """The open breaker's state {since, next_probe_at, probes, last_error} (datetimes), or None when closed."""
    row = db.session.get(SendingState, STATE_KEY)
    if row is None or not row.value.get("since"):
        return None
    value = dict(row.value)
    for key in ("since", "next_probe_at"):
        value[key] = datetime.fromisoformat(value[key])
    return value


def open_for(error: str, now: datetime | None = None) -> dict:
    """Open the breaker (or, if open, push the next probe back by the next backoff step); returns its state."""
    now = now or utcnow()
    current = state()
    probes = (current["probes"] + 1) if current else 0
    steps = backoff()
    wait = steps[min(probes, len(steps) - 1)]
    value = {
        "since": (current["since"] if current else now).isoformat(),
        "next_probe_at": (now + timedelta(seconds=wait)).isoformat(),
        "probes": probes,
        "last_error": error[:500],
    }
    _store(value, now)
    if current is None:
        logger.warning("Twilio unreachable, sending paused; probing again in %g s: %s", wait, error)
    else:
        logger.warning("Twilio probe %d failed, next in %g s: %s", probes, wait, error)
    return state()


def close(now: datetime | None = None) -> dict | None:
    """Close the breaker; returns the state it had (None if it was closed)."""
    current = state()
    if current is None:
        return None
    _store({}, now or utcnow())
    logger.warning(
        "Twilio reachable again after %.0f s (%d probes): sending resumes",
        ((now or utcnow()) - current["since"]).total_seconds(),
        current["probes"] + 1,
    )
    return current


def take_probe(now: datetime | None = None) -> bool:
    """True for the one caller that may send the probe now (the probe time has come and nobody else took it)."""
    current = state()
    now = now or utcnow()
    if current is None or now < current["next_probe_at"]:
        return False
    try:
        return bool(get_redis().set(PROBE_LOCK_KEY, "1", nx=True, ex=30))
    except Exception:  # Redis down: nothing would be enqueued anyway; let this job probe
        return True


def release_probe() -> None:
    try:
        get_redis().delete(PROBE_LOCK_KEY)
    except Exception:
        logger.warning("could not release the Twilio probe lock; it expires in 30 s")


def _store(value: dict, now: datetime) -> None:
    if db.session.execute(
        update(SendingState).where(SendingState.key == STATE_KEY).values(value=value, updated_at=now)
    ).rowcount:
        db.session.commit()
        return
    try:
        db.session.add(SendingState(key=STATE_KEY, value=value, updated_at=now))
        db.session.commit()
    except IntegrityError:  # another process stored it first: write over it
        db.session.rollback()
        db.session.execute(
            update(SendingState).where(SendingState.key == STATE_KEY).values(value=value, updated_at=now)
        )
        db.session.commit()


def outage_summary() -> dict | None:
    """For pages: {since, next_probe_at, last_error} of the open breaker, or None (never raises)."""
    try:
        return state()
    except Exception:
        db.session.rollback()
        return None
