"""Queued messages whose job is gone are enqueued again: the database, not Redis, says what is to send.

A send job can vanish before a worker takes it: Redis flushed or restarted
without persistence, a queue emptied in /rq, a scheduled retry lost. Every
`SCAN_EVERY` seconds one sweeper compares the `queued` messages (older than
`GRACE`, so a message whose job is being enqueued right now is left alone)
with the message ids named by the live send jobs (waiting, running or
scheduled) and enqueues the rest. An extra job is harmless: a message is
claimed, and so sent, once whatever the number of jobs that name it.
"""

import logging
from datetime import datetime, timedelta

from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import or_, select

from app.extensions import db
from app.models import message_table
from app.queues import BULK_QUEUE, CONVERSATIONAL_QUEUE, get_queue, get_redis
from app.sending.messaging import SEND_JOB, enqueue_messages

logger = logging.getLogger("app.sending.orphans")

SCAN_KEY = "jd:sending:orphan-scan"
SCAN_EVERY = 10
GRACE = timedelta(seconds=15)
SCAN_LIMIT = 500_000
FETCH_CHUNK = 500


def requeue_orphans(now: datetime, force: bool = False) -> int:
    """Enqueue the queued messages no live job names (at most once per `SCAN_EVERY`); returns how many."""
    redis = get_redis()
    if not force and not redis.set(SCAN_KEY, "1", nx=True, ex=SCAN_EVERY):
        return 0
    m = message_table.c
    cutoff = now - GRACE
    candidates = db.session.execute(
        select(m.id, m.campaign_id)
        .where(
            m.status == "queued",
            m.updated_at < cutoff,
            or_(m.next_attempt_at.is_(None), m.next_attempt_at < cutoff),
            or_(m.not_before.is_(None), m.not_before <= now),  # held for a schedule or window: not yet
        )
        .order_by(m.id)
        .limit(SCAN_LIMIT)
    ).all()
    db.session.commit()
    if not candidates:
        return 0
    held = ids_in_live_jobs()
    orphans = [row for row in candidates if row.id not in held]
    if not orphans:
        return 0
    enqueue_messages([row.id for row in orphans if row.campaign_id is None])
    enqueue_messages([row.id for row in orphans if row.campaign_id is not None], bulk=True)
    campaigns = sorted({row.campaign_id for row in orphans if row.campaign_id is not None})
    logger.warning(
        "queued messages without a job (Redis flushed or restarted, or a queue emptied): %d enqueued again "
        "(campaigns %s; message ids %d..%d)",
        len(orphans),
        campaigns or "none",
        orphans[0].id,
        orphans[-1].id,
    )
    return len(orphans)


def ids_in_live_jobs() -> set[int]:
    """Message ids named by send jobs that are waiting, running or scheduled."""
    redis = get_redis()
    job_ids: list[str] = []
    for name in (CONVERSATIONAL_QUEUE, BULK_QUEUE):
        queue = get_queue(name)
        job_ids += queue.get_job_ids()
        job_ids += StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)
        job_ids += ScheduledJobRegistry(queue=queue).get_job_ids(cleanup=False)
    held: set[int] = set()
    unique = list(dict.fromkeys(job_ids))
    for start in range(0, len(unique), FETCH_CHUNK):
        for job in Job.fetch_many(unique[start : start + FETCH_CHUNK], connection=redis):
            if job is not None and job.func_name == SEND_JOB and job.args:
                held.update(job.args[0])
    return held
