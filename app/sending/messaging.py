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
   each rate-limited chunk): one executemany UPDATE, the `MessageEvent`s, one
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

Status callbacks (`record_status`) only move a message forward (queued <
sending < sent < delivered/undelivered/failed < read). A callback can beat the
job's own UPDATE that stores the sid; it is then kept in Redis for an hour and
applied as soon as the sid is stored.
"""

import json
import os
import queue
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import Campaign, Contact, Message, MessageEvent, utcnow
from app.queues import JOB_DEFAULTS, get_queue, get_redis
from app.sending.channels import OutboundMessage, SenderSettings, SendResult, SentLookup, explain_error, get_sender
from app.sending.limiter import SendRateLimiter

SEND_JOB = "app.tasks.messages.send_batch"
STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
# RQ ends a send job after this long; no job still holds a message claimed longer ago than that.
SEND_JOB_TIMEOUT = 600
# Added to it for the default `stale_after`: chunks still in flight when the timeout hits finish within a send
# timeout (15 s), and worker clocks may differ a little.
STALE_MARGIN = timedelta(seconds=60)
# Twilio's clock against ours, and its dates' whole seconds: the margin around a stuck message's lookup window.
CLOCK_SKEW = timedelta(seconds=60)
# Without a rate limit, results are recorded (and committed) every this many answers.
RECORD_EVERY = 50
# A rate-limited job should finish well within the job timeout: at most about this much sending per job.
SECONDS_PER_LIMITED_JOB = 60
# Rate-limited chunks in flight at once in one worker process (each chunk is one concurrent send_many).
CHUNK_THREADS = 32
EARLY_STATUS_TTL = 3600

OPTED_OUT_REASON = "Not sent: the contact opted out (replied STOP); nothing is sent to them until they reply START."
UNSENT = ("queued", "sending")
# Our own statuses and Twilio's, in the order a message moves through them; it never moves back.
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3, "read": 4}
# Twilio callback statuses -> ours (Twilio's queued/accepted/sending all mean "accepted, on its way").
CALLBACK_STATUSES = {
    "queued": "sent",
    "accepted": "sent",
    "scheduled": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "failed": "failed",
}

message_table = Message.__table__
campaign_table = Campaign.__table__
contact_table = Contact.__table__
event_table = MessageEvent.__table__


@dataclass(frozen=True)
class Outcome:
    """What one `deliver` did with one message: accepted (`ok`), or failed; `final` False = will retry."""

    message_id: int
    participation_id: int | None
    ok: bool
    final: bool
    error_code: int | None = None
    error_message: str | None = None


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


# -- queueing ------------------------------------------------------------------


def enqueue_messages(message_ids: Iterable[int]) -> int:
    """Enqueue send jobs for these `queued` messages, one per batch, in one Redis round trip.

    Returns the number of jobs. Safe to call twice for the same ids: a message
    is sent once whatever the number of jobs that name it.
    """
    ids = list(message_ids)
    if not ids:
        return 0
    size = batch_size(current_app.config)
    queue = get_queue("messages")
    jobs = [
        queue.prepare_data(SEND_JOB, args=(ids[start : start + size],), timeout=SEND_JOB_TIMEOUT, **JOB_DEFAULTS)
        for start in range(0, len(ids), size)
    ]
    with get_redis().pipeline() as pipe:
        queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()
    return len(jobs)


def batch_size(config) -> int:
    """Messages per job: `SEND_BATCH_SIZE`, fewer when a low rate limit would make a job run long."""
    size = int(config.get("SEND_BATCH_SIZE") or 200)
    rate = float(config.get("MESSAGE_RATE_LIMIT") or 0)
    if rate > 0:
        size = min(size, int(rate * SECONDS_PER_LIMITED_JOB))
    return max(1, size)


# -- sending -------------------------------------------------------------------


def deliver(message_ids: Iterable[int]) -> list[Outcome]:
    """Send the still-`queued` messages among these ids and record what happened (one job's work)."""
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
        Outcome(row.id, row.participation_id, ok=False, final=True, error_message=OPTED_OUT_REASON) for row in opted_out
    ]
    if claimed:
        settings = SenderSettings.from_config(config)
        callback = status_callback_url(config)
        rows = {str(row.id): row for row in claimed}
        for results in _send([_outbound(row, callback) for row in claimed], settings, _limiter()):
            outcomes += _record_results(
                [rows[result.key] for result in results], results, settings.dry_run, config["RETRY_BACKOFF"]
            )
            db.session.commit()
            if not settings.dry_run:
                _apply_early_statuses([result.sid for result in results if result.ok and result.sid])
    _complete_campaigns(campaign_ids)
    _schedule_retries(claimed, outcomes, config["RETRY_BACKOFF"])
    return outcomes


def _fail_opted_out(ids: list[int], now):
    opted_out_phones = select(contact_table.c.phone).where(contact_table.c.opted_out.is_(True))
    return db.session.execute(
        update(message_table)
        .where(
            message_table.c.id.in_(ids),
            message_table.c.status == "queued",
            message_table.c.to_phone.in_(opted_out_phones),
        )
        .values(status="failed", error_code=None, error_message=OPTED_OUT_REASON, updated_at=now)
        .returning(message_table.c.id, message_table.c.participation_id, message_table.c.campaign_id)
    ).all()


def _claim(ids: list[int], now):
    """Atomically move the `queued` rows to `sending`; only what this returns is ours to send."""
    m = message_table.c
    return db.session.execute(
        update(message_table)
        .where(m.id.in_(ids), m.status == "queued")
        .values(status="sending", attempts=m.attempts + 1, updated_at=now)
        .returning(
            m.id,
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


def _outbound(row, status_callback: str | None) -> OutboundMessage:
    return OutboundMessage(
        key=str(row.id),
        to=row.to_phone,
        channel=row.channel,
        body=row.body,
        content_sid=row.content_sid,
        content_variables=row.content_variables,
        media_url=row.media_url,
        status_callback=status_callback,
    )


def _limiter() -> SendRateLimiter | None:
    """This process's limiter for the configured rate, or None when `MESSAGE_RATE_LIMIT` is 0."""
    rate = float(current_app.config.get("MESSAGE_RATE_LIMIT") or 0)
    if rate <= 0:
        return None
    cached = current_app.extensions.get("send_limiter")
    if cached is None or cached[0] != rate:
        cached = current_app.extensions["send_limiter"] = (rate, SendRateLimiter(get_redis(), rate))
    return cached[1]


class _SenderPool:
    """This process's warm senders and threads, kept from job to job so connections are reused.

    A new sender is warmed up with a message it refuses without calling
    Twilio: that builds its event loop, connection pool and SDK client before
    it is used, not inside a timed send (tens of ms on a busy machine: enough
    to push a rate-limited chunk into the next second at Twilio). A forked
    worker starts with an empty pool rather than its parent's sockets.
    """

    def __init__(self):
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.idle: dict[SenderSettings, list] = defaultdict(list)
        self.threads = ThreadPoolExecutor(CHUNK_THREADS, thread_name_prefix="send-chunk")
        self.free_threads = threading.BoundedSemaphore(CHUNK_THREADS)

    def take(self, settings: SenderSettings):
        with self.lock:
            if self.idle[settings]:
                return self.idle[settings].pop()
        sender = get_sender(settings)
        sender.send_many([OutboundMessage(key="warm-up", to="", channel="sms", body="warm-up")])
        return sender

    def give_back(self, settings: SenderSettings, sender) -> None:
        with self.lock:
            self.idle[settings].append(sender)


_sender_pools: list[_SenderPool] = []
_sender_pools_lock = threading.Lock()


def _sender_pool() -> _SenderPool:
    with _sender_pools_lock:
        if not _sender_pools or _sender_pools[0].pid != os.getpid():
            _sender_pools[:] = [_SenderPool()]
        return _sender_pools[0]


def _send(
    outbound: list[OutboundMessage], settings: SenderSettings, limiter: SendRateLimiter | None
) -> Iterator[list[SendResult]]:
    """Send everything; yield the results in groups as they arrive, so they are recorded while others fly."""
    if limiter is None:
        return _send_unlimited(outbound, settings)
    return _send_limited(outbound, settings, limiter)


def _send_unlimited(outbound: list[OutboundMessage], settings: SenderSettings) -> Iterator[list[SendResult]]:
    """One `send_many`, `SEND_CONCURRENCY` calls in flight, in a pool thread; its results are handed out
    every `RECORD_EVERY` (or fewer at the end) as they arrive."""
    pool = _sender_pool()
    arrived: queue.SimpleQueue[SendResult | None] = queue.SimpleQueue()
    sender = pool.take(settings)

    def send_all():
        try:
            return sender.send_many(outbound, on_result=arrived.put)
        finally:
            pool.give_back(settings, sender)
            arrived.put(None)

    sending = pool.threads.submit(send_all)
    group = []
    while (result := arrived.get()) is not None:
        group.append(result)
        if len(group) >= RECORD_EVERY:
            yield group
            group = []
    if group:
        yield group
    sending.result()  # an error that stopped the batch surfaces here


def _send_limited(
    outbound: list[OutboundMessage], settings: SenderSettings, limiter: SendRateLimiter
) -> Iterator[list[SendResult]]:
    """Cut the batch into the limiter's chunks; for each, first reserve a free thread and a warm sender,
    then take its capacity and hand it over at once, so nothing stands between a chunk's place in the
    window and its calls. Several chunks are in flight together, hiding Twilio's latency, and the rate
    holds steady. Finished chunks are handed out between submissions.
    """
    pool = _sender_pool()
    _preload_twilio_sdk()
    chunk_settings = replace(settings, concurrency=limiter.chunk_size)

    def send_chunk(sender, chunk):
        try:
            return sender.send_many(chunk)
        finally:
            pool.give_back(chunk_settings, sender)
            pool.free_threads.release()

    running: set[Future] = set()
    for start in range(0, len(outbound), limiter.chunk_size):
        yield from _finished(running, block=False)
        chunk = outbound[start : start + limiter.chunk_size]
        pool.free_threads.acquire()
        sender = pool.take(chunk_settings)
        try:
            limiter.acquire(len(chunk))
        except BaseException:  # e.g. the job timed out while waiting: the rest of the batch stays unsent
            pool.give_back(chunk_settings, sender)
            pool.free_threads.release()
            raise
        running.add(pool.threads.submit(send_chunk, sender, chunk))
    while running:
        yield from _finished(running, block=True)


def _finished(running: set[Future], block: bool) -> Iterator[list[SendResult]]:
    """Take the chunks that are done out of `running` (waiting for one first if `block`)."""
    if not running:
        return
    done, _ = wait(running, timeout=None if block else 0, return_when=FIRST_COMPLETED)
    for future in done:
        running.discard(future)
        yield future.result()


def _preload_twilio_sdk() -> None:
    """Import the SDK's Messages resource now: it loads lazily on first use (50-100 ms), and a first
    chunk that late would land in the next window at Twilio, not the one it took its place in."""
    import twilio.rest.api.v2010.account.message  # noqa: F401


def _record_results(claimed, results, dry_run: bool, backoff: list[float]) -> list[Outcome]:
    """Write every send result with one executemany; return the outcomes."""
    now = utcnow()
    max_attempts = 1 + len(backoff)
    updates, events, outcomes, unsubscribed = [], [], [], []
    for row, result in zip(claimed, results, strict=True):
        update_row = {
            "b_id": row.id,
            "b_status": "sent",
            "b_sid": None,
            "b_error_code": result.error_code,
            "b_error_message": result.error_message,
            "b_sent_at": None,
            "b_next_attempt_at": None,
            "b_dry_run": dry_run,
            "b_updated_at": now,
        }
        if result.ok:
            update_row.update(b_sid=result.sid, b_sent_at=now, b_error_code=None, b_error_message=None)
            events.append({"message_id": row.id, "status": "sent", "error_code": None, "at": now})
            outcomes.append(Outcome(row.id, row.participation_id, ok=True, final=True))
            updates.append(update_row)
            continue
        retry = result.transient and row.attempts < max_attempts
        message = result.error_message or explain_error(result.error_code)
        if result.transient and not retry:
            message = f"{message} Gave up after {row.attempts} attempts."
        if retry:
            delay = backoff[row.attempts - 1]
            update_row.update(b_status="queued", b_next_attempt_at=now + timedelta(seconds=delay))
            message = f"Attempt {row.attempts} failed, trying again in {delay:g} s: {message}"
        else:
            update_row["b_status"] = "failed"
            events.append({"message_id": row.id, "status": "failed", "error_code": result.error_code, "at": now})
        if result.error_code == 21610:
            unsubscribed.append(row.to_phone)
        update_row["b_error_message"] = message
        updates.append(update_row)
        outcomes.append(
            Outcome(
                row.id,
                row.participation_id,
                ok=False,
                final=not retry,
                error_code=result.error_code,
                error_message=message,
            )
        )
    m = message_table.c
    db.session.execute(
        update(message_table)
        .where(m.id == bindparam("b_id"), m.status == "sending")
        .values(
            status=bindparam("b_status"),
            sid=bindparam("b_sid"),
            error_code=bindparam("b_error_code"),
            error_message=bindparam("b_error_message"),
            sent_at=bindparam("b_sent_at"),
            next_attempt_at=bindparam("b_next_attempt_at"),
            dry_run=bindparam("b_dry_run"),
            updated_at=bindparam("b_updated_at"),
        ),
        updates,
    )
    _insert_events(events)
    if unsubscribed:
        _set_opted_out(unsubscribed, True)
    return outcomes


def _schedule_retries(claimed, outcomes: list[Outcome], backoff: list[float]) -> None:
    """Re-enqueue the transient failures after their backoff, one job per delay."""
    attempts = {row.id: row.attempts for row in claimed}
    by_delay = defaultdict(list)
    for outcome in outcomes:
        if not outcome.final:
            by_delay[backoff[attempts[outcome.message_id] - 1]].append(outcome.message_id)
    queue = get_queue("messages") if by_delay else None
    for delay, ids in by_delay.items():
        queue.enqueue_in(timedelta(seconds=delay), SEND_JOB, ids, job_timeout=SEND_JOB_TIMEOUT, **JOB_DEFAULTS)


def _complete_campaigns(campaign_ids: set[int]) -> None:
    """Campaigns with no message left to send become `completed`, in one atomic UPDATE.

    Run in its own transaction after the results are committed: of two jobs
    finishing the same campaign at once, the later to commit then sees the
    other's rows, so the campaign cannot be left `sending` forever.
    """
    if not campaign_ids:
        return
    unsent = (
        select(message_table.c.id)
        .where(message_table.c.campaign_id == campaign_table.c.id, message_table.c.status.in_(UNSENT))
        .exists()
    )
    db.session.execute(
        update(campaign_table)
        .where(campaign_table.c.id.in_(campaign_ids), campaign_table.c.status.in_(UNSENT), ~unsent)
        .values(status="completed", finished_at=utcnow())
    )
    db.session.commit()


def insert_ignore(table, index_elements: list[str]):
    """INSERT … ON CONFLICT DO NOTHING for the session's database."""
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=index_elements)


def _insert_events(events: list[dict]) -> None:
    if events:
        db.session.execute(insert_ignore(event_table, ["message_id", "status"]), events)


# -- canceling and recovery ----------------------------------------------------


def cancel_messages(*criteria, commit: bool = True) -> int:
    """Mark `queued` messages matching these `Message` column criteria `canceled`; return how many."""
    count = db.session.execute(
        update(message_table)
        .where(message_table.c.status == "queued", *criteria)
        .values(status="canceled", updated_at=utcnow())
    ).rowcount
    if commit:
        db.session.commit()
    return count


def cancel_campaign(campaign_id: int, commit: bool = True) -> int:
    """Stop a campaign: its queued messages are not sent (those already in flight finish)."""
    count = cancel_messages(message_table.c.campaign_id == campaign_id, commit=False)
    db.session.execute(
        update(campaign_table)
        .where(campaign_table.c.id == campaign_id, campaign_table.c.status.in_(UNSENT))
        .values(status="canceled", finished_at=utcnow())
    )
    if commit:
        db.session.commit()
    return count


def cancel_for_participations(participation_ids: Iterable[int], commit: bool = True) -> int:
    """Cancel the queued messages of these participations (a stopped run or contact)."""
    ids = list(participation_ids)
    if not ids:
        return 0
    return cancel_messages(message_table.c.participation_id.in_(ids), commit=commit)


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
    m = message_table.c
    stuck = db.session.execute(
        select(
            m.id,
            m.participation_id,
            m.campaign_id,
            m.to_phone,
            m.channel,
            m.body,
            m.content_sid,
            m.attempts,
            m.created_at,
            m.updated_at,
        )
        .where(m.status == "sending", m.sid.is_(None), m.updated_at < cutoff)
        .order_by(m.id)
    ).all()
    db.session.commit()  # no transaction stays open while Twilio is asked
    accepted, unknown, unresolved = _reconcile(stuck, older_than) if stuck else ([], [], [])
    requeued = (
        db.session.execute(
            update(message_table)
            .where(m.id.in_(unknown), m.status == "sending", m.sid.is_(None), m.updated_at < cutoff)
            .values(status="queued", next_attempt_at=now, updated_at=now)
            .returning(m.id)
        )
        .scalars()
        .all()
        if unknown
        else []
    )
    overdue = (
        db.session.execute(
            update(message_table)
            .where(m.status == "queued", m.next_attempt_at < cutoff)
            .values(next_attempt_at=now, updated_at=now)
            .returning(m.id)
        )
        .scalars()
        .all()
    )
    db.session.commit()
    ids = [*requeued, *overdue]
    if stuck or ids:
        current_app.logger.warning(
            "messages left behind by dead jobs: %d stuck sending (%d accepted by Twilio and recorded as sent, "
            "%d re-enqueued, %d left for the next sweep as Twilio could not be asked); %d overdue retries "
            "re-enqueued",
            len(stuck),
            len(accepted),
            len(requeued),
            len(unresolved),
            len(overdue),
        )
    enqueue_messages(ids)
    return StaleRecovery(requeued=len(ids), accepted=tuple(accepted), unresolved=len(unresolved))


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
            current_app.logger.warning(
                "cannot tell whether Twilio accepted message %d: %s", row.id, answer.error_message
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


# -- status callbacks ----------------------------------------------------------


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


# -- counts --------------------------------------------------------------------


def campaign_counts(campaign_id: int) -> dict:
    """Exact counts from the message log: total, queued, sent, delivered, failed, canceled.

    Cumulative as in the contract: `sent` is every message Twilio accepted
    (has a sid), including those delivered, read or failed later; `queued` is
    not yet accepted (waiting, retrying or in flight).
    """
    return campaigns_counts([campaign_id])[campaign_id]


def campaigns_counts(campaign_ids: Iterable[int]) -> dict[int, dict]:
    """`campaign_counts` for many campaigns in one grouped query (campaign lists)."""
    ids = list(campaign_ids)
    counts = {
        campaign_id: {"total": 0, "queued": 0, "sent": 0, "delivered": 0, "failed": 0, "canceled": 0}
        for campaign_id in ids
    }
    if not ids:
        return counts
    m = message_table.c
    rows = db.session.execute(
        select(m.campaign_id, m.status, func.count(), func.count(m.sid))
        .where(m.campaign_id.in_(ids))
        .group_by(m.campaign_id, m.status)
    )
    for campaign_id, status, number, accepted in rows:
        tally = counts[campaign_id]
        tally["total"] += number
        tally["sent"] += accepted
        if status in UNSENT:
            tally["queued"] += number
        elif status in ("delivered", "read"):
            tally["delivered"] += number
        elif status in ("failed", "undelivered"):
            tally["failed"] += number
        elif status == "canceled":
            tally["canceled"] += number
    return counts


# -- opt-out -------------------------------------------------------------------


def opt_out(phone: str, commit: bool = True) -> int:
    """Stop every message to this number (a contact row is made for unknown numbers); return the contact id."""
    return _set_opted_out([phone], True, commit=commit)[0]


def opt_in(phone: str, commit: bool = True) -> int:
    """Undo `opt_out` for this number; return the contact id."""
    return _set_opted_out([phone], False, commit=commit)[0]


def _set_opted_out(phones: list[str], opted_out: bool, commit: bool = False) -> list[int]:
    """Upsert contacts by phone with this opt-out flag (atomic: no read-then-write race)."""
    now = utcnow()
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    ids = []
    for phone in dict.fromkeys(bare_phone(phone) for phone in phones):
        insert = dialect.insert(contact_table).values(
            phone=phone,
            fields={},
            opted_out=opted_out,
            opted_out_at=now if opted_out else None,
            created_at=now,
            updated_at=now,
        )
        ids.append(
            db.session.execute(
                insert.on_conflict_do_update(
                    index_elements=["phone"],
                    set_={
                        "opted_out": insert.excluded.opted_out,
                        "opted_out_at": insert.excluded.opted_out_at,
                        "updated_at": insert.excluded.updated_at,
                    },
                ).returning(contact_table.c.id)
            ).scalar_one()
        )
    if commit:
        db.session.commit()
    return ids


def bare_phone(address: str) -> str:
    """`whatsapp:+1555…` -> `+1555…`: contacts are keyed by the plain E.164 number."""
    address = address.strip()
    return address.split(":", 1)[1].strip() if address.lower().startswith("whatsapp:") else address
