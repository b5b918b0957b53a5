"""Sending the message log through Twilio: queue, claim, rate-limit, send, record, retry.

Callers (campaigns, journey runs) bulk-insert `Message` rows with status
`queued` and call `enqueue_messages(ids)`: one RQ job per `SEND_BATCH_SIZE`
ids, all enqueued in one Redis round trip. Each job runs `deliver(ids)`:

1. In one transaction, fail the messages to opted-out contacts (never sent)
   and *claim* the rest with `UPDATE … SET status='sending' WHERE
   status='queued' RETURNING …`. Only claimed rows are sent, so a job that
   runs twice, or two jobs holding the same ids, send each message once;
   canceled messages (campaign deleted, participation stopped) are no longer
   `queued` and are skipped the same way.
2. Send what was claimed, many calls in flight (`sender.send_many`), paced by
   the global `MESSAGE_RATE_LIMIT` window (`app.sending.limiter`) in small chunks.
3. Record the results as they arrive, every `RECORD_EVERY` messages (or
   each rate-limited chunk): one UPDATE of the batch, the `MessageEvent`s, one
   commit; so a crash loses only the answers not recorded yet. Then mark
   campaigns with nothing left to send `completed` and re-enqueue transient
   failures with `RETRY_BACKOFF` (`enqueue_in`).

Crash recovery: a job killed between claim and record leaves its rows in
`sending` without a sid, and Twilio may or may not have accepted them.
`requeue_stale()` (run periodically by the worker's sweeper) takes the rows
that stayed `sending` longer than `stale_after()` (the job timeout plus a
margin, or `MESSAGE_STALE_SECONDS`: no live job still holds them) and asks
Twilio first (`sender.find_sent`, its Messages list): a message Twilio knows
is recorded as sent with its sid, exactly as if the send had answered, and
its journey contact moves on (`StaleRecovery.accepted`, for
`runner.on_message_outcomes`); only a message Twilio does not know goes back
to `queued`. When Twilio cannot be asked, nothing is resent: the rows wait
for the next sweep. So a crash never sends a message twice.

Status callbacks (`app.sending.callbacks`) only move a message forward
(queued < sending < sent < delivered/undelivered/failed < read). A callback
can beat the job's own UPDATE that stores the sid; it is then parked in the
database and applied as soon as the sid is stored.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select, update

from app.contacts import suppression
from app.contacts.optout import _set_opted_out
from app.extensions import db
from app.models import campaign_table, contact_table, message_table, utcnow
from app.models.bulk import by_key_only
from app.queues import BULK_QUEUE, CONVERSATIONAL_QUEUE, JOB_DEFAULTS, get_queue, get_redis
from app.sending import breaker, liveness
from app.sending.callbacks import _apply_early_statuses
from app.sending.channels import OutboundMessage, SenderSettings, SendResult, explain_error
from app.sending.dispatch import send
from app.sending.liveness import worker_id
from app.sending.log import _complete_campaigns, _insert_events, write_results
from app.sending.senders_pool import sender_for

logger = logging.getLogger("app.sending.messaging")

SEND_JOB = "app.tasks.messages.send_batch"
STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
# RQ ends a send job after this long; no job still holds a message claimed longer ago than that.
SEND_JOB_TIMEOUT = 600
# A rate-limited job should finish well within the job timeout: at most about this much sending per job.
SECONDS_PER_LIMITED_JOB = 60
# Bulk jobs are kept short (about this many seconds at the limit) so a worker soon turns to conversations.
SECONDS_PER_BULK_JOB = 4

OPTED_OUT_REASON = "Not sent: the contact opted out (replied STOP); nothing is sent to them until they reply START."


@dataclass(frozen=True)
class Outcome:
    """What one `deliver` did with one message: accepted (`ok`), or failed; `final` False = will retry."""

    message_id: int
    participation_id: int | None
    ok: bool
    final: bool
    error_code: int | None = None
    error_message: str | None = None


# -- queueing ------------------------------------------------------------------


def enqueue_messages(message_ids: Iterable[int], bulk: bool = False) -> int:
    """Enqueue send jobs for these `queued` messages, one per batch, in one Redis round trip.

    `bulk` (campaigns) goes to the `messages` queue; the rest (journey
    messages, replies) to `messages_conversational`, which workers take first.
    Returns the number of jobs. Safe to call twice for the same ids: a message
    is sent once whatever the number of jobs that name it.
    """
    ids = list(message_ids)
    if not ids:
        return 0
    size = batch_size(current_app.config, bulk)
    queue = get_queue(BULK_QUEUE if bulk else CONVERSATIONAL_QUEUE)
    jobs = [
        queue.prepare_data(
            SEND_JOB,
            args=(ids[start : start + size],),
            kwargs={} if bulk else {"gather": True},
            timeout=SEND_JOB_TIMEOUT,
            **JOB_DEFAULTS,
        )
        for start in range(0, len(ids), size)
    ]
    with get_redis().pipeline() as pipe:
        queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()
    return len(jobs)


def batch_size(config, bulk: bool = False) -> int:
    """Messages per job: `SEND_BATCH_SIZE`, fewer when a low rate limit would make a job run long."""
    size = int(config.get("SEND_BATCH_SIZE") or 200)
    rate = float(config.get("MESSAGE_RATE_LIMIT") or 0)
    if rate > 0:
        size = min(size, int(rate * (SECONDS_PER_BULK_JOB if bulk else SECONDS_PER_LIMITED_JOB)))
    return max(1, size)


def with_waiting_conversations(message_ids: list[int]) -> list[int]:
    """These ids and, up to a batch in all, the other conversational messages due and waiting, oldest first.

    A conversational job sends them too: a burst of replies then leaves as one
    concurrent batch instead of one job after another behind a single worker
    (each job of a single message waits a whole Twilio round trip). The jobs
    that named the others find them sent and finish at once; a message is
    claimed once whoever sends it.
    """
    room = batch_size(current_app.config) - len(message_ids)
    if room <= 0:
        return list(message_ids)
    m, now = message_table.c, utcnow()
    waiting = db.session.scalars(
        select(m.id)
        .where(
            m.campaign_id.is_(None),
            m.status == "queued",
            m.not_before.is_(None),
            or_(m.next_attempt_at.is_(None), m.next_attempt_at <= now),
            m.id.not_in(message_ids),
        )
        .order_by(m.id)
        .limit(room)
    ).all()
    db.session.commit()
    return [*message_ids, *waiting]


# -- sending -------------------------------------------------------------------


def deliver(message_ids: Iterable[int], priority: bool | None = None) -> list[Outcome]:
    """Send the still-`queued` messages among these ids and record what happened (one job's work).

    `priority` (default: no campaign message among them) lets these sends go ahead of bulk ones.
    """
    ids = sorted(set(message_ids))
    if not ids:
        return []
    config = current_app.config
    now = utcnow()
    opted_out = _fail_opted_out(ids, now)
    claimed = _claim(ids, now)
    _insert_events([{"message_id": row.id, "status": "failed", "error_code": None, "at": now} for row in opted_out])
    campaign_ids = {row.campaign_id for row in (*opted_out, *claimed) if row.campaign_id is not None}
    _mark_campaigns_sending(campaign_ids)
    db.session.commit()

    outcomes = [
        Outcome(row.id, row.participation_id, ok=False, final=True, error_message=row.error_message)
        for row in opted_out
    ]
    for row in opted_out:
        logger.warning(
            "not sent (opted out): message=%d campaign=%s participation=%s",
            row.id,
            row.campaign_id,
            row.participation_id,
        )
    retry_delays: dict[int, float] = {}
    if claimed:
        if priority is None:
            priority = all(row.campaign_id is None for row in claimed)
        claimed, probing = _through_breaker(claimed, now)
        outcomes += _send_and_record(claimed, config, priority, probing, retry_delays)
    _complete_campaigns(campaign_ids)
    _schedule_retries(retry_delays)
    return outcomes


def _send_and_record(claimed, config, priority: bool, probing: bool, retry_delays: dict) -> list[Outcome]:
    """Send the claimed rows, record each group of results as it arrives; feed the circuit breaker."""
    settings = SenderSettings.from_config(config)
    callback = status_callback_url(config)
    senders = {row.id: row.from_address or sender_for(row.to_phone, row.channel, config) for row in claimed}
    rows = {str(row.id): row for row in claimed}
    outcomes: list[Outcome] = []
    accepted_any = False
    try:
        for results in send([_outbound(row, callback, senders[row.id]) for row in claimed], settings, priority):
            accepted_any |= any(result.ok for result in results)
            hold_until = _breaker_after(results, accepted_any, probing)
            group = [rows[result.key] for result in results]
            outcomes += _record_results(group, results, senders, settings.dry_run, config, hold_until, retry_delays)
            db.session.commit()
            if not settings.dry_run:
                _apply_early_statuses([result.sid for result in results if result.ok and result.sid])
    except Exception:
        db.session.rollback()
        liveness.abandon_claims(row.id for row in claimed)  # e.g. the database went away: recovery looks them up
        raise
    finally:
        if probing:
            breaker.release_probe()
    if settings.dry_run:
        logger.info(
            "dry run: %d messages recorded as sent without calling Twilio (message ids %d..%d, campaigns %s)",
            len(claimed),
            claimed[0].id,
            claimed[-1].id,
            sorted({row.campaign_id for row in claimed if row.campaign_id is not None}) or "none",
        )
    return outcomes


def _through_breaker(claimed, now):
    """The rows to send now and whether this is the probe: all of them while Twilio is up; while the
    breaker is open, one (the probe) when its time has come, else none. The rest wait, unclaimed."""
    state = breaker.state()
    if state is None:
        return claimed, False
    if breaker.take_probe(now):
        _hold(claimed[1:], now + timedelta(seconds=breaker.backoff()[0]), now)
        return claimed[:1], True
    _hold(claimed, state["next_probe_at"], now)
    return [], False


def _hold(rows, until, now) -> None:
    """Put claimed rows back to `queued` until `until` (no attempt counted) and schedule their job."""
    if not rows:
        return
    m = message_table.c
    ids = [row.id for row in rows]
    db.session.execute(
        update(message_table)
        .where(m.id.in_(ids), by_key_only(m.status) == "sending")
        .values(status="queued", attempts=m.attempts - 1, claimed_by=None, next_attempt_at=until, updated_at=now)
    )
    db.session.commit()
    _schedule_retries({row.id: max((until - now).total_seconds(), 0.5) for row in rows})


def _breaker_after(results: list[SendResult], accepted_any: bool, probing: bool):
    """Open, push back or close the breaker from one group of results; returns until when outage
    failures wait (None: Twilio is up, they retry as usual)."""
    outages = [result for result in results if breaker.is_outage(result)]
    if accepted_any or not outages:
        if probing and accepted_any:
            breaker.close()
            _resume_held()
        return None
    return breaker.open_for(outages[0].error_message or "Twilio unreachable")["next_probe_at"]


def _resume_held() -> None:
    """The breaker closed: messages waiting for the next probe are sent now."""
    now = utcnow()
    m = message_table.c
    waiting = db.session.execute(
        update(message_table)
        .where(m.status == "queued", m.next_attempt_at > now)
        .values(next_attempt_at=now, updated_at=now)
        .returning(m.id, m.campaign_id)
    ).all()
    db.session.commit()
    enqueue_messages([row.id for row in waiting if row.campaign_id is None])
    enqueue_messages([row.id for row in waiting if row.campaign_id is not None], bulk=True)


def _fail_opted_out(ids: list[int], now):
    """Fail (never send) the queued messages to opted-out contacts and to suppressed (erased) numbers."""
    opted_out_phones = select(contact_table.c.phone).where(contact_table.c.opted_out.is_(True))
    suppressed = _fail_suppressed(ids, now)
    opted_out = db.session.execute(
        update(message_table)
        .where(
            message_table.c.id.in_(ids),
            by_key_only(message_table.c.status) == "queued",
            message_table.c.to_phone.in_(opted_out_phones),
        )
        .values(status="failed", error_code=None, error_message=OPTED_OUT_REASON, updated_at=now)
        .returning(*_FAILED_COLUMNS)
    ).all()
    return suppressed + opted_out


_FAILED_COLUMNS = (
    message_table.c.id,
    message_table.c.participation_id,
    message_table.c.campaign_id,
    message_table.c.error_message,
)


def _fail_suppressed(ids: list[int], now) -> list:
    """Numbers kept only as a hash (`app.contacts.suppression`) are matched in Python: hash the batch's phones."""
    if not suppression.any_suppressed():
        return []
    m = message_table.c
    phones = db.session.scalars(
        select(m.to_phone).where(m.id.in_(ids), by_key_only(m.status) == "queued").distinct()
    ).all()
    blocked = suppression.suppressed(phones)
    if not blocked:
        return []
    return db.session.execute(
        update(message_table)
        .where(m.id.in_(ids), by_key_only(m.status) == "queued", m.to_phone.in_(blocked))
        .values(status="failed", error_code=None, error_message=suppression.SUPPRESSED_REASON, updated_at=now)
        .returning(*_FAILED_COLUMNS)
    ).all()


def _claim(ids: list[int], now):
    """Atomically move the `queued` rows to `sending`; only what this returns is ours to send."""
    m = message_table.c
    return db.session.execute(
        update(message_table)
        .where(m.id.in_(ids), by_key_only(m.status) == "queued")
        .values(status="sending", attempts=m.attempts + 1, claimed_by=worker_id(), updated_at=now)
        .returning(
            m.id,
            m.contact_id,
            m.from_address,
            m.participation_id,
            m.campaign_id,
            m.to_phone,
            m.channel,
            m.body,
            m.content_sid,
            m.content_variables,
            m.media_url,
            m.attempts,
        )
    ).all()


def _mark_campaigns_sending(campaign_ids: set[int]) -> None:
    if campaign_ids:
        db.session.execute(
            update(campaign_table)
            .where(campaign_table.c.id.in_(campaign_ids), campaign_table.c.status == "queued")
            .values(status="sending")
        )


def status_callback_url(config) -> str | None:
    """Where Twilio posts status callbacks: `PUBLIC_BASE_URL` (or `SERVER_NAME`) + the webhook path."""
    base = config.get("PUBLIC_BASE_URL")
    if not base and config.get("SERVER_NAME"):
        base = f"{config.get('PREFERRED_URL_SCHEME') or 'http'}://{config['SERVER_NAME']}"
    return base.rstrip("/") + STATUS_CALLBACK_PATH if base else None


def _outbound(row, status_callback: str | None, from_address: str | None) -> OutboundMessage:
    return OutboundMessage(
        from_address=from_address,
        key=str(row.id),
        to=row.to_phone,
        channel=row.channel,
        body=row.body,
        content_sid=row.content_sid,
        content_variables=row.content_variables,
        media_url=row.media_url,
        status_callback=status_callback,
    )


def _record_results(claimed, results, senders, dry_run, config, hold_until, retry_delays) -> list[Outcome]:
    """Write every send result in one statement; return the outcomes (fills `retry_delays`).

    An ambiguous failure (the request may have reached Twilio) stays `sending`, released by its
    worker (`claimed_by` NULL): recovery looks it up at Twilio before anything is resent.
    """
    now = utcnow()
    updates, events, outcomes, unsubscribed = [], [], [], []
    for row, result in zip(claimed, results, strict=True):
        update_row = {
            "b_id": row.id,
            "b_status": "sent",
            "b_sid": result.sid if result.ok else None,
            "b_error_code": None if result.ok else result.error_code,
            "b_error_message": None,
            "b_sent_at": now if result.ok else None,
            "b_next_attempt_at": None,
            "b_dry_run": dry_run,
            "b_attempts": row.attempts,
            "b_from": senders.get(row.id),
            "b_updated_at": now,
        }
        updates.append(update_row)
        if result.ok:
            events.append({"message_id": row.id, "status": "sent", "error_code": None, "at": now})
            outcomes.append(Outcome(row.id, row.participation_id, ok=True, final=True))
            continue
        outcome = _failure(row, result, update_row, config["RETRY_BACKOFF"], hold_until, now)
        if outcome is None:
            continue
        if outcome.final:
            events.append({"message_id": row.id, "status": "failed", "error_code": result.error_code, "at": now})
        else:
            retry_delays[row.id] = (update_row["b_next_attempt_at"] - now).total_seconds()
        if result.error_code == 21610:
            unsubscribed.append(row.to_phone)
        outcomes.append(outcome)
    write_results(updates)
    _insert_events(events)
    if unsubscribed:
        _set_opted_out(unsubscribed, True)
    return outcomes


def _failure(row, result: SendResult, update_row: dict, backoff, hold_until, now) -> Outcome | None:
    """Fill `update_row` for a failed send and log it; the outcome, or None when it must be looked up first."""
    message = result.error_message or explain_error(result.error_code)
    ids = f"message={row.id} campaign={row.campaign_id} participation={row.participation_id} contact={row.contact_id}"
    if result.ambiguous:
        update_row.update(b_status="sending", b_error_message=f"Outcome unknown, to be looked up at Twilio: {message}")
        logger.warning("send outcome unknown, Twilio will be asked before any resend: %s: %s", ids, message)
        return None
    if hold_until is not None and breaker.is_outage(result):
        update_row.update(b_status="queued", b_next_attempt_at=hold_until, b_attempts=row.attempts - 1)
        update_row["b_error_message"] = f"Twilio unreachable; waiting for it to come back: {message}"
        logger.warning("send paused, Twilio unreachable: %s code=%s: %s", ids, result.error_code, message)
        return Outcome(row.id, row.participation_id, ok=False, final=False, error_message=message)
    retry = result.transient and row.attempts < 1 + len(backoff)
    if result.transient and not retry:
        message = f"{message} Gave up after {row.attempts} attempts."
    if retry:
        delay = backoff[row.attempts - 1]
        update_row.update(b_status="queued", b_next_attempt_at=now + timedelta(seconds=delay))
        message = f"Attempt {row.attempts} failed, trying again in {delay:g} s: {message}"
    else:
        update_row["b_status"] = "failed"
    update_row["b_error_message"] = message
    logger.warning(
        "send failed (%s): %s code=%s: %s", "will retry" if retry else "final", ids, result.error_code, message
    )
    return Outcome(
        row.id, row.participation_id, ok=False, final=not retry, error_code=result.error_code, error_message=message
    )


def _schedule_retries(retry_delays: dict[int, float]) -> None:
    """Re-enqueue messages after their delay, one job per delay; lost jobs are found again by recovery."""
    if not retry_delays:
        return
    m = message_table.c
    bulk = set(db.session.scalars(select(m.id).where(m.id.in_(list(retry_delays)), m.campaign_id.is_not(None))))
    db.session.commit()
    by_delay = defaultdict(list)
    for message_id, delay in retry_delays.items():
        by_delay[(round(delay, 1), message_id in bulk)].append(message_id)
    for (delay, is_bulk), ids in by_delay.items():
        get_queue(BULK_QUEUE if is_bulk else CONVERSATIONAL_QUEUE).enqueue_in(
            timedelta(seconds=delay), SEND_JOB, ids, job_timeout=SEND_JOB_TIMEOUT, **JOB_DEFAULTS
        )
