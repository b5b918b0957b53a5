"""Twilio status callbacks applied to the message log (never moving a status backwards)."""

import json

from sqlalchemy import select, update

from app.extensions import db
from app.models import message_table, utcnow
from app.models.vocabulary import CALLBACK_STATUSES, STATUS_RANK
from app.queues import get_redis
from app.sending.channels import explain_error
from app.sending.log import _insert_events

EARLY_STATUS_TTL = 3600


def record_status(sid: str, status: str, error_code=None) -> bool:
    """Apply a Twilio status callback; True when the message moved forward.

    Repeats and late callbacks (a `sent` after `delivered`) change nothing. A
    callback for a sid not stored yet (the sending job has not written it) is
    kept and applied when it is.
    """
    ours = CALLBACK_STATUSES.get((status or "").strip().lower())
    if not sid or ours is None:
        return False
    code = _as_code(error_code)
    changed = _apply_status(sid, ours, code)
    if changed is None:
        key = _early_status_key(sid)
        with get_redis().pipeline() as pipe:
            pipe.rpush(key, json.dumps([ours, code]))
            pipe.expire(key, EARLY_STATUS_TTL)
            pipe.execute()
        # The job may have stored the sid between our look and the stash: look again.
        changed = _apply_status(sid, ours, code)
    db.session.commit()
    return bool(changed)


def _apply_status(sid: str, status: str, error_code: int | None) -> bool | None:
    """Move message `sid` forward to `status`: True if it moved, False if not, None if no such sid yet."""
    m = message_table.c
    behind = [name for name, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
    values = {"status": status, "updated_at": utcnow()}
    if status in ("failed", "undelivered"):
        values.update(error_code=error_code, error_message=explain_error(error_code))
    moved = db.session.execute(
        update(message_table).where(m.sid == sid, m.status.in_(behind)).values(**values).returning(m.id)
    ).scalar()
    if moved is None:
        return False if db.session.execute(select(m.id).where(m.sid == sid)).first() else None
    _insert_events([{"message_id": moved, "status": status, "error_code": error_code, "at": utcnow()}])
    return True


def _apply_early_statuses(sids: list[str]) -> None:
    """Apply callbacks that arrived before their sid was stored (one Redis round trip per batch)."""
    if not sids:
        return
    redis = get_redis()
    with redis.pipeline(transaction=False) as pipe:
        for sid in sids:
            pipe.lrange(_early_status_key(sid), 0, -1)
        stashed = pipe.execute()
    found = [(sid, entries) for sid, entries in zip(sids, stashed) if entries]
    if not found:
        return
    for sid, entries in found:
        for entry in entries:
            status, code = json.loads(entry)
            _apply_status(sid, status, code)
    db.session.commit()
    redis.delete(*(_early_status_key(sid) for sid, _ in found))


def _early_status_key(sid: str) -> str:
    return f"jd:early-status:{sid}"


def _as_code(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
