"""Twilio status callbacks: stored as they arrive, applied to the message log in bulk, never moving a status back.

The webhook only stores a callback (`store_status`: one INSERT, repeats of
a sid and status ignored) and answers. `apply_pending`, run by the sweeper
in every worker, applies the stored rows in batches: it claims a batch by
deleting it and applies it in the same transaction, so each callback is
applied once whoever runs it, and PostgreSQL appliers skip rows another
holds. A callback whose sid is not in the log yet (Twilio can call back
before the send job stores the sid) stays parked in the table; the send job
applies it as soon as it stores that sid (`_apply_early_statuses`).
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select, update

from app.extensions import db
from app.models import message_table, status_callback_table, utcnow
from app.models.bulk import insert_ignore
from app.models.vocabulary import CALLBACK_STATUSES, STATUS_RANK
from app.sending.channels import explain_error
from app.sending.log import _insert_events

APPLY_BATCH = 1000  # callbacks applied per transaction
SIDS_PER_QUERY = 500
# A parked callback whose sid never reaches the log (sent by another system on the same account) is dropped after.
PARKED_FOR = timedelta(hours=24)
FAILED_STATUSES = ("failed", "undelivered")


def store_status(sid: str, status: str, error_code=None) -> bool:
    """Store one callback as Twilio posted it; False (nothing stored) without a sid or with a status we don't know."""
    ours = CALLBACK_STATUSES.get((status or "").strip().lower())
    if not sid or ours is None:
        return False
    code = _as_code(error_code) if ours in FAILED_STATUSES else None
    db.session.execute(
        insert_ignore(status_callback_table, ["sid", "status"]).values(
            sid=sid[:64], status=ours, error_code=code, received_at=utcnow()
        )
    )
    db.session.commit()
    return True


def record_status(sid: str, status: str, error_code=None) -> bool:
    """Store a callback and apply it now; True when its message moved forward (False: unknown yet, or a repeat)."""
    if not store_status(sid, status, error_code):
        return False
    moved = _apply(_claim([sid]))
    db.session.commit()
    return moved > 0


def apply_pending(batch: int = APPLY_BATCH) -> int:
    """Apply every stored callback whose message is in the log, `batch` per transaction; return how many."""
    applied = 0
    while True:
        rows = _claim(None, batch)
        _apply(rows)
        db.session.commit()
        applied += len(rows)
        if len(rows) < batch:
            break
    _drop_stale_parked()
    return applied


def _apply_early_statuses(sids: Iterable[str]) -> int:
    """Apply the callbacks parked for these sids (just stored by a send job or crash recovery); return how many."""
    wanted = list(dict.fromkeys(sid for sid in sids if sid))
    applied = 0
    for start in range(0, len(wanted), SIDS_PER_QUERY):
        rows = _claim(wanted[start : start + SIDS_PER_QUERY])
        _apply(rows)
        db.session.commit()
        applied += len(rows)
    return applied


def _claim(sids: list[str] | None, limit: int | None = None):
    """Delete (and return) stored callbacks whose message is in the log: those for `sids`, or the oldest `limit`."""
    cb, m = status_callback_table.c, message_table.c
    chosen = select(cb.id).join(message_table, m.sid == cb.sid)
    if sids is not None:
        chosen = chosen.where(cb.sid.in_(sids))
    if limit is not None:
        chosen = chosen.order_by(cb.id).limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        chosen = chosen.with_for_update(of=status_callback_table, skip_locked=True)
    return db.session.execute(
        delete(status_callback_table)
        .where(cb.id.in_(chosen.scalar_subquery()))
        .returning(cb.id, cb.sid, cb.status, cb.error_code, cb.received_at)
    ).all()


def _apply(rows) -> int:
    """Move the messages of these claimed callbacks forward, lowest status first; return how many moved."""
    groups = defaultdict(list)
    for row in sorted(rows, key=lambda row: (STATUS_RANK[row.status], row.id)):
        groups[(row.status, row.error_code)].append(row)
    events, now = [], utcnow()
    for (status, code), group in groups.items():
        received_at = {row.sid: row.received_at for row in group}
        for message_id, sid in _move(list(received_at), status, code, now):
            events.append({"message_id": message_id, "status": status, "error_code": code, "at": received_at[sid]})
    _insert_events(events)
    return len(events)


def _move(sids: list[str], status: str, error_code: int | None, now) -> list[tuple[int, str]]:
    """Set `status` on the messages with these sids that are behind it; return their (id, sid)."""
    m = message_table.c
    behind = [name for name, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
    values = {"status": status, "updated_at": now}
    if status in FAILED_STATUSES:
        values.update(error_code=error_code, error_message=explain_error(error_code))
    return db.session.execute(
        update(message_table).where(m.sid.in_(sids), m.status.in_(behind)).values(**values).returning(m.id, m.sid)
    ).all()


def _apply_status(sid: str, status: str, error_code: int | None) -> bool | None:
    """Move message `sid` forward to `status` (what Twilio's lookup says): True if it moved, None if no such sid."""
    moved = _move([sid], status, error_code, utcnow())
    if not moved:
        return (
            False if db.session.execute(select(message_table.c.id).where(message_table.c.sid == sid)).first() else None
        )
    _insert_events([{"message_id": moved[0][0], "status": status, "error_code": error_code, "at": utcnow()}])
    return True


def _drop_stale_parked() -> None:
    """Forget parked callbacks too old for their sid ever to be stored here."""
    cb = status_callback_table.c
    dropped = db.session.execute(delete(status_callback_table).where(cb.received_at < utcnow() - PARKED_FOR)).rowcount
    db.session.commit()
    if dropped:
        current_app.logger.warning(
            "dropped %d status callbacks parked over %s: no message of ours has their sid", dropped, PARKED_FOR
        )


def _as_code(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
