"""Messages left behind: looked up at Twilio before anything is resent, and jobs that went missing.

Three kinds of work can be stranded. A message `sending` without a sid whose
worker is dead (no heartbeat, `app.sending.liveness`), whose send's outcome
was unknown (released: `claimed_by` NULL), or claimed longer than
`stale_after` ago: Twilio is asked first (`_reconcile`). A `queued` message
whose job is gone (Redis flushed or restarted, a queue emptied in /rq, a lost
retry) is enqueued again (`app.sending.orphans`): the database is the truth.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, or_, select, update

from app.extensions import db
from app.models import message_table, utcnow
from app.models.vocabulary import CALLBACK_STATUSES, STATUS_RANK
from app.sending.callbacks import _apply_early_statuses, _apply_status
from app.sending.channels import SenderSettings, SentLookup, get_sender
from app.sending.liveness import live_workers
from app.sending.log import _complete_campaigns, _insert_events
from app.sending.messaging import SEND_JOB_TIMEOUT, Outcome, enqueue_messages
from app.sending.orphans import requeue_orphans
from app.sending.senders_pool import sender_for

logger = logging.getLogger("app.sending.recovery")

# An unknown outcome is looked up this long after the send, so Twilio has surely stored what it accepted.
LOOKUP_AFTER = timedelta(seconds=2)
# A dead worker's claim is taken over only when claimed at least this long ago (its claim commit was seen).
DEAD_CLAIM_MIN_AGE = timedelta(seconds=3)

# Added to it for the default `stale_after`: chunks still in flight when the timeout hits finish within a send
# timeout (15 s), and worker clocks may differ a little.
STALE_MARGIN = timedelta(seconds=60)


# Twilio's clock against ours, and its dates' whole seconds: the margin around a stuck message's lookup window.
CLOCK_SKEW = timedelta(seconds=60)


@dataclass(frozen=True)
class StaleRecovery:
    """What one `requeue_stale` did.

    `requeued`: messages enqueued again (stuck sends Twilio does not know, and
    lost retries). `accepted`: outcomes of stuck sends Twilio had accepted, now
    recorded as sent; give them to `runner.on_message_outcomes` like a send
    job's. `unresolved`: stuck sends Twilio could not be asked about, left for
    the next sweep.
    """

    requeued: int = 0
    accepted: tuple[Outcome, ...] = ()
    unresolved: int = 0


def stale_after(config) -> timedelta:
    """How long a message may stay `sending` before its job is surely dead.

    `MESSAGE_STALE_SECONDS` when set; else `SEND_JOB_TIMEOUT` plus
    `STALE_MARGIN` (RQ ends a job at its timeout, so no live job is robbed).
    """
    seconds = config.get("MESSAGE_STALE_SECONDS")
    if seconds:
        return timedelta(seconds=float(seconds))
    return timedelta(seconds=SEND_JOB_TIMEOUT) + STALE_MARGIN


def requeue_stale(older_than: timedelta | None = None) -> StaleRecovery:
    """Recover the messages crashed jobs left behind (run periodically by the worker's sweeper).

    Rows `sending` for longer than `older_than` (default `stale_after`) with
    no sid lost their job between claim and record: Twilio is asked about
    them first (`_reconcile`) and only those it does not know go back to
    `queued`. Rows `queued` for a retry that is overdue by as long (the
    scheduled job was lost) are enqueued again, and stamped so the next sweep
    leaves them alone for as long.
    """
    now = utcnow()
    older_than = older_than or stale_after(current_app.config)
    cutoff = now - older_than
    stranded = _stranded(now, cutoff)
    stuck = _stuck_rows(stranded)
    db.session.commit()  # no transaction stays open while Twilio is asked
    accepted, unknown, unresolved = _reconcile(stuck, older_than) if stuck else ([], [], [])
    requeued = _back_to_queued(unknown, stranded, now)
    overdue = _restamp_overdue(cutoff, now)
    db.session.commit()
    ids = [*requeued, *overdue]
    if stuck or ids:
        logger.warning(
            "stranded messages recovered: %d stuck sending (%d accepted by Twilio and recorded as sent, "
            "%d re-enqueued, %d left for the next sweep as Twilio could not be asked); %d overdue retries "
            "re-enqueued; message ids %s",
            len(stuck),
            len(accepted),
            len(requeued),
            len(unresolved),
            len(overdue),
            _some(ids or [row.id for row in stuck]),
        )
    _enqueue_split(ids)
    orphans = requeue_orphans(now)
    return StaleRecovery(requeued=len(ids) + orphans, accepted=tuple(accepted), unresolved=len(unresolved))


def _stranded(now: datetime, cutoff: datetime):
    """A claim no live job holds: old, released after an unknown outcome, or held by a worker with no heartbeat."""
    m = message_table.c
    live = live_workers(now)
    return or_(
        m.updated_at < cutoff,
        and_(m.claimed_by.is_(None), m.updated_at < now - LOOKUP_AFTER),
        and_(m.claimed_by.not_in(live) if live else m.claimed_by.is_not(None), m.updated_at < now - DEAD_CLAIM_MIN_AGE),
    )


def _stuck_rows(stranded) -> list:
    m = message_table.c
    columns = (m.id, m.participation_id, m.campaign_id, m.to_phone, m.channel, m.body, m.content_sid, m.attempts)
    return db.session.execute(
        select(*columns, m.created_at, m.updated_at, m.from_address, m.claimed_by)
        .where(m.status == "sending", m.sid.is_(None), stranded)
        .order_by(m.id)
    ).all()


def _back_to_queued(unknown: list[int], stranded, now: datetime) -> list[int]:
    """Rows Twilio does not know go back to `queued` (only if still stranded: a late answer may have come)."""
    if not unknown:
        return []
    m = message_table.c
    return list(
        db.session.execute(
            update(message_table)
            .where(m.id.in_(unknown), m.status == "sending", m.sid.is_(None), stranded)
            .values(status="queued", next_attempt_at=now, claimed_by=None, updated_at=now)
            .returning(m.id)
        ).scalars()
    )


def _restamp_overdue(cutoff: datetime, now: datetime) -> list[int]:
    """Retries overdue by the stale time (their scheduled job was lost), stamped so the next sweep waits."""
    m = message_table.c
    return list(
        db.session.execute(
            update(message_table)
            .where(m.status == "queued", m.next_attempt_at < cutoff)
            .values(next_attempt_at=now, updated_at=now)
            .returning(m.id)
        ).scalars()
    )


def _some(ids: list[int], most: int = 20) -> str:
    shown = ",".join(str(message_id) for message_id in ids[:most])
    return shown + (f",… ({len(ids)} in all)" if len(ids) > most else "")


def _enqueue_split(ids: list[int]) -> None:
    """Enqueue these messages, campaign ones on the bulk queue, the rest on the conversational one."""
    if not ids:
        return
    m = message_table.c
    bulk = set(db.session.scalars(select(m.id).where(m.id.in_(ids), m.campaign_id.is_not(None))))
    db.session.commit()
    enqueue_messages([message_id for message_id in ids if message_id not in bulk])
    enqueue_messages([message_id for message_id in ids if message_id in bulk], bulk=True)


def _reconcile(stuck, older_than: timedelta) -> tuple[list[Outcome], list[int], list[int]]:
    """Ask Twilio about stuck rows; record those it accepted as sent.

    Returns (outcomes of the rows recorded as sent, ids Twilio does not know,
    ids it could not be asked about). A row's window runs from its creation
    (every attempt, an earlier one that timed out included) to its last
    claim plus `older_than` (its job was over by then), with `CLOCK_SKEW`
    either side. A Twilio message matches at most one row, and never one
    whose sid is already recorded on another row.
    """
    settings = SenderSettings.from_config(current_app.config)
    lookups = [
        SentLookup(
            key=str(row.id),
            to=row.to_phone,
            channel=row.channel,
            body=row.body,
            content_sid=row.content_sid,
            from_address=row.from_address or sender_for(row.to_phone, row.channel),
            since=_aware(row.created_at) - CLOCK_SKEW,
            until=_aware(row.updated_at) + older_than + CLOCK_SKEW,
        )
        for row in stuck
    ]
    with get_sender(settings) as sender:
        answers = sender.find_sent(lookups)
    candidates = {found.sid for answer in answers for found in answer.found}
    m = message_table.c
    taken = set(db.session.scalars(select(m.sid).where(m.sid.in_(list(candidates))))) if candidates else set()
    found_for, unknown, unresolved = [], [], []
    for row, answer in zip(stuck, answers, strict=True):
        found = next((found for found in answer.found if found.sid not in taken), None)
        if not answer.ok:
            unresolved.append(row.id)
            logger.warning(
                "cannot tell whether Twilio accepted message=%d campaign=%s participation=%s: %s",
                row.id,
                row.campaign_id,
                row.participation_id,
                answer.error_message,
            )
        elif found is None:
            unknown.append(row.id)
        else:
            taken.add(found.sid)
            found_for.append((row, found))
    return _record_found(found_for), unknown, unresolved


def _record_found(found_for: list) -> list[Outcome]:
    """Record (row, Twilio message) pairs as sent, as the lost send would have; return their outcomes."""
    if not found_for:
        return []
    now = utcnow()
    m = message_table.c
    outcomes, events, later = [], [], []
    for row, found in found_for:
        recorded = db.session.execute(
            update(message_table)
            # Still the same claim: not recorded, requeued or claimed again meanwhile.
            .where(m.id == row.id, m.status == "sending", m.sid.is_(None), m.attempts == row.attempts)
            .values(
                status="sent",
                sid=found.sid,
                sent_at=found.created_at.astimezone(UTC).replace(tzinfo=None),
                error_code=None,
                error_message=None,
                next_attempt_at=None,
                dry_run=False,
                updated_at=now,
            )
            .returning(m.id)
        ).scalar()
        if recorded is None:
            continue
        events.append({"message_id": row.id, "status": "sent", "error_code": None, "at": now})
        outcomes.append(Outcome(row.id, row.participation_id, ok=True, final=True))
        status = CALLBACK_STATUSES.get(found.status)
        if status and STATUS_RANK[status] > STATUS_RANK["sent"]:
            later.append((found.sid, status, found.error_code))
    _insert_events(events)
    for sid, status, error_code in later:  # Twilio already knows more: delivered, failed, ...
        _apply_status(sid, status, error_code)
    db.session.commit()
    _complete_campaigns({row.campaign_id for row, _ in found_for if row.campaign_id is not None})
    _apply_early_statuses([found.sid for _, found in found_for])
    return outcomes


def _aware(moment: datetime) -> datetime:
    """Our naive UTC timestamps as timezone-aware ones, to compare with Twilio's."""
    return moment.replace(tzinfo=UTC)
