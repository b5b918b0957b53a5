"""The durable-timer sweeper: claims due participations and re-dispatches them.

Every worker process runs it; it is what makes delays, wait timeouts and
lost jobs survive restarts and a flushed Redis."""

from __future__ import annotations

import contextlib
from datetime import datetime

from flask import current_app
from redis.exceptions import LockError
from sqlalchemy import bindparam, select, update

from app.extensions import db
from app.models import (
    ACTIVE_STATES,
    Run,
    participation_table,
    utcnow,
)
from app.models.vocabulary import WORKING_STATES
from app.queues import get_redis
from app.runs.advancing import feed_message_outcomes
from app.runs.inbound import handle_stale_received
from app.runs.lifecycle import _lock_in_id_order
from app.runs.runner import BATCH_SIZE, _enqueue, _lease
from app.runs.schedule import release_due, start_due
from app.sending import callbacks, recovery

SWEEP_LIMIT = 5000  # due participations claimed per sweep


SWEEP_LOCK_KEY = "jd:runner:sweep-lock"


EPOCH_KEY = "jd:runner:epoch"


REQUEUE_STALE_KEY = "jd:runner:requeue-stale"


REQUEUE_STALE_EVERY = 5  # seconds between `recovery.requeue_stale()` calls, across all sweepers


def sweep(now: datetime | None = None, limit: int = SWEEP_LIMIT) -> dict[str, int]:
    """Claim due participations and dispatch them; returns counts by kind of work (empty if another sweeps).

    Called about twice a second by a thread in every worker process. A Redis
    lock keeps sweepers from working at the same moment; the claim itself is
    an atomic UPDATE of `wake_at`, so even two sweeps at once never dispatch
    a participation twice. `now` (naive UTC) lets tests drive time.
    """
    now = now or utcnow()
    redis = get_redis()
    lock = redis.lock(SWEEP_LOCK_KEY, timeout=60, blocking=False)
    if not lock.acquire(blocking=False):
        return {}
    try:
        if redis.set(EPOCH_KEY, now.isoformat(), nx=True):
            _expire_leases(now)
        counts = _start_scheduled(now)
        counts.update(_dispatch_due(now, limit))
        counts["preparing"] = _resume_preparing(now)
        if redis.set(REQUEUE_STALE_KEY, "1", nx=True, ex=REQUEUE_STALE_EVERY):
            result = recovery.requeue_stale()
            counts["requeued_messages"] = result.requeued
            counts["reconciled_messages"] = feed_message_outcomes(result.accepted)
        counts["status_callbacks"] = callbacks.apply_pending()
        counts["stale_inbound"] = handle_stale_received(now)
        return counts
    finally:
        with contextlib.suppress(LockError):
            lock.release()


def _start_scheduled(now: datetime) -> dict[str, int]:
    """Scheduled runs and campaigns whose time has come start; messages whose `not_before` came are sent."""
    counts = start_due(now)
    counts["released_messages"] = release_due(now)
    return counts


def _expire_leases(now: datetime) -> None:
    """Redis is new or was flushed: every job may be gone, so every lease is due now."""
    p = participation_table.c
    _lock_in_id_order(p.state.in_(WORKING_STATES))
    count = db.session.execute(
        update(participation_table).where(p.state.in_(WORKING_STATES)).values(wake_at=now)
    ).rowcount
    db.session.commit()
    if count:
        current_app.logger.warning(
            "Redis had no runner marker (new or flushed): re-dispatching %d participations", count
        )


def _resume_preparing(now: datetime) -> int:
    """Re-enqueue `prepare_run` for runs still `preparing` a lease after they started (the job was lost)."""
    lease = _lease()
    stuck = list(db.session.scalars(select(Run.id).where(Run.status == "preparing", Run.created_at < now - lease)))
    db.session.commit()
    redis = get_redis()
    again = [
        run_id
        for run_id in stuck
        if redis.set(f"jd:runner:preparing:{run_id}", "1", nx=True, ex=max(1, int(lease.total_seconds())))
    ]
    _enqueue("prepare_run", [(run_id,) for run_id in again], timeout=3600)
    return len(again)


def _dispatch_due(now: datetime, limit: int) -> dict[str, int]:
    p = participation_table.c
    lease = _lease()
    # Rows a job holds right now are skipped, not waited for: they are being worked on, and a sweeper
    # that never waits for a lock cannot deadlock with the jobs (PostgreSQL; SQLite has one writer).
    due = list(
        db.session.scalars(
            select(p.id)
            .where(p.wake_at <= now, p.state.in_(ACTIVE_STATES))
            .order_by(p.wake_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    claimed = (
        db.session.execute(
            update(participation_table)
            .where(p.id.in_(due), p.wake_at <= now, p.state.in_(ACTIVE_STATES))
            .values(wake_at=now + lease)
            .returning(p.id, p.state, p.engine_state, p.updated_at)
        ).all()
        if due
        else []
    )
    # Work still undone after a lease gets a longer one each time (the age of its last change): a long
    # queue behind a low rate limit is re-checked a handful of times, not every lease.
    backoff = [
        {"b_id": row.id, "b_wake_at": now + (now - row.updated_at)}
        for row in claimed
        if row.state in WORKING_STATES and now - row.updated_at > lease
    ]
    if backoff:
        db.session.execute(
            update(participation_table).where(p.id == bindparam("b_id")).values(wake_at=bindparam("b_wake_at")),
            backoff,
        )
    db.session.commit()
    timers, active, sending = [], [], []
    for row in claimed:
        if row.state in ("delayed", "waiting"):
            state = row.engine_state or {}
            node_id = state.get("node_id")
            timers.append((row.id, node_id, (state.get("visits") or {}).get(node_id)))
        elif row.state == "active":
            active.append(row.id)
        else:
            sending.append(row.id)
    _enqueue("fire_timers", [(timers[i : i + BATCH_SIZE],) for i in range(0, len(timers), BATCH_SIZE)])
    _enqueue("advance", [(active[i : i + BATCH_SIZE],) for i in range(0, len(active), BATCH_SIZE)])
    _enqueue("recover_sending", [(sending[i : i + BATCH_SIZE],) for i in range(0, len(sending), BATCH_SIZE)])
    return {"timers": len(timers), "active": len(active), "sending": len(sending)}
