"""Which worker processes are alive: a dead claim is told from a slow one by its worker's heartbeat.

Every worker process has an id (`worker_id()`), stamped on the messages it
claims (`Message.claimed_by`), and beats (`beat()`, from its sweeper thread,
which runs even while a long job holds the main thread) into the database,
which outlives a flushed Redis. A message `sending` without a sid whose
worker has not beaten for `DEAD_AFTER` lost its job: recovery looks it up at
Twilio within seconds instead of waiting out the job timeout.
"""

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from app.extensions import db
from app.models import heartbeat_table, message_table, utcnow
from app.models.bulk import by_key_only

BEAT_EVERY = timedelta(seconds=3)
# A worker silent this long is dead (ten missed beats: a busy database or a long pause is not death).
DEAD_AFTER = timedelta(seconds=30)
# Heartbeat rows of workers gone this long are removed.
FORGET_AFTER = timedelta(hours=1)

_identity: dict[int, str] = {}
_last_beat: dict[int, datetime] = {}
# Claims of this process whose job ended in an error (e.g. the database went away mid-send), to be released.
_abandoned: dict[int, set[int]] = {}


def worker_id() -> str:
    """This process's id (host, pid and a random part, so a reused pid is a new worker)."""
    pid = os.getpid()
    if pid not in _identity:
        _identity[pid] = f"{socket.gethostname()[:30]}:{pid}:{uuid.uuid4().hex[:8]}"
    return _identity[pid]


def beat(now: datetime | None = None) -> bool:
    """Record that this process is alive (at most every `BEAT_EVERY`); True when it wrote."""
    now = now or utcnow()
    pid = os.getpid()
    last = _last_beat.get(pid)
    if last is not None and now - last < BEAT_EVERY:
        return False
    me = worker_id()
    h = heartbeat_table.c
    if not db.session.execute(update(heartbeat_table).where(h.worker_id == me).values(beat_at=now)).rowcount:
        db.session.execute(heartbeat_table.insert().values(worker_id=me, beat_at=now))
    db.session.execute(delete(heartbeat_table).where(h.beat_at < now - FORGET_AFTER))
    db.session.commit()
    _last_beat[pid] = now
    return True


def live_workers(now: datetime | None = None) -> set[str]:
    """Ids of the workers that beat within `DEAD_AFTER`."""
    now = now or utcnow()
    h = heartbeat_table.c
    return set(db.session.scalars(select(h.worker_id).where(h.beat_at >= now - DEAD_AFTER)))


def abandon_claims(message_ids) -> None:
    """Remember claims a failed job left; `release_abandoned` hands them to recovery once the database answers.

    This process stays alive (its heartbeat vouches for its claims), so without this they would wait for
    the stale timeout although no job holds them any more.
    """
    _abandoned.setdefault(os.getpid(), set()).update(message_ids)


def release_abandoned() -> int:
    """Release this process's abandoned claims still `sending` without a sid: recovery looks them up at Twilio
    (`claimed_by` NULL) before anything is resent. Returns how many were released."""
    ids = _abandoned.get(os.getpid())
    if not ids:
        return 0
    m = message_table.c
    released = db.session.execute(
        update(message_table)
        .where(
            m.id.in_(sorted(ids)),
            by_key_only(m.status) == "sending",
            by_key_only(m.sid).is_(None),
            m.claimed_by == worker_id(),
        )
        .values(claimed_by=None)
    ).rowcount
    db.session.commit()
    ids.clear()
    return released
