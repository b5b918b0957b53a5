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

import os
import queue
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, select, update

from app.contacts import suppression
from app.contacts.optout import _set_opted_out
from app.extensions import db
from app.models import campaign_table, contact_table, message_table, utcnow
from app.queues import JOB_DEFAULTS, get_queue, get_redis
from app.sending.callbacks import _apply_early_statuses
from app.sending.channels import OutboundMessage, SenderSettings, SendResult, explain_error, get_sender
from app.sending.limiter import SendRateLimiter
from app.sending.log import _complete_campaigns, _insert_events

SEND_JOB = "app.tasks.messages.send_batch"
STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
# RQ ends a send job after this long; no job still holds a message claimed longer ago than that.
SEND_JOB_TIMEOUT = 600
# Without a rate limit, results are recorded (and committed) every this many answers.
RECORD_EVERY = 50
# A rate-limited job should finish well within the job timeout: at most about this much sending per job.
SECONDS_PER_LIMITED_JOB = 60
# Rate-limited chunks in flight at once in one worker process (each chunk is one concurrent send_many).
CHUNK_THREADS = 32

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
        Outcome(row.id, row.participation_id, ok=False, final=True, error_message=row.error_message)
        for row in opted_out
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
    """Fail (never send) the queued messages to opted-out contacts and to suppressed (erased) numbers."""
    opted_out_phones = select(contact_table.c.phone).where(contact_table.c.opted_out.is_(True))
    suppressed = _fail_suppressed(ids, now)
    opted_out = db.session.execute(
        update(message_table)
        .where(
            message_table.c.id.in_(ids),
            message_table.c.status == "queued",
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
    phones = db.session.scalars(select(m.to_phone).where(m.id.in_(ids), m.status == "queued").distinct()).all()
    blocked = suppression.suppressed(phones)
    if not blocked:
        return []
    return db.session.execute(
        update(message_table)
        .where(m.id.in_(ids), m.status == "queued", m.to_phone.in_(blocked))
        .values(status="failed", error_code=None, error_message=suppression.SUPPRESSED_REASON, updated_at=now)
        .returning(*_FAILED_COLUMNS)
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


# -- canceling and recovery ----------------------------------------------------


# -- status callbacks ----------------------------------------------------------


# -- counts --------------------------------------------------------------------


# -- opt-out -------------------------------------------------------------------
