"""The events that move contacts: first steps, timers, API answers, send outcomes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

from flask import current_app
from redis.exceptions import LockError
from sqlalchemy import select

from app.engine import events
from app.extensions import db
from app.models import (
    message_table,
    participation_table,
    utcnow,
)
from app.models.vocabulary import NOT_DELIVERED_STATUSES
from app.queues import get_redis
from app.runs import http_calls, runner
from app.runs.message_rows import idempotency_key
from app.runs.runner import _enqueue, _enqueue_api_calls, _feed_outcomes, _step
from app.sending import messaging

# How long a job keeps sending the messages its own steps create before it leaves the rest to send jobs:
# well under the job timeouts, short enough that a worker soon takes other work again.
INLINE_SEND_SECONDS = 20.0


def advance(participation_ids: Iterable[int]) -> int:
    """Start participations that have not started; hand those waiting on an API call to `call_apis`.

    The first step of every contact (from `prepare_run`), and the sweeper's
    redo of an `active` participation whose job was lost. The messages the
    first steps create are sent by this job (`send_inline`).
    """
    pending_api = []

    def decide(row, state):
        if row.state != "active":
            return None
        if state.node_id is None:
            return events.Start(), {}
        if (row.engine_state or {}).get("pending_api"):
            pending_api.append(row.id)
        return None

    deadline = time.monotonic() + INLINE_SEND_SECONDS
    with runner.collecting_sends() as sends:
        results = _step(participation_ids, decide)
    _enqueue_api_calls(pending_api)
    send_inline(sends, deadline)
    return len(results)


def fire_timers(items: Iterable[tuple[int, str, int]]) -> int:
    """Deliver `TimerFired(node, visit)` to each `(participation_id, node_id, visit)` still at that visit."""
    wanted = {int(pid): (node_id, visit) for pid, node_id, visit in items}

    def decide(row, state):
        node_id, visit = wanted[row.id]
        if state.status not in ("delayed", "waiting") or state.node_id != node_id:
            return None
        if state.visits.get(node_id) != visit:
            return None
        return events.TimerFired(node_id, visit), {}

    deadline = time.monotonic() + INLINE_SEND_SECONDS
    with runner.collecting_sends() as sends:
        fired = len(_step(wanted, decide))
    send_inline(sends, deadline)
    return fired


def send_inline(message_ids: list[int], deadline: float) -> None:
    """Send, in this job, the messages its steps just created, and move their contacts on, again and again
    (a journey's next message goes out as soon as the last one is accepted), until `deadline`; what is
    left then goes to the `messages` queue as usual.

    No round trip through Redis and no other job between a contact's messages: this is what makes a
    journey send as fast as a campaign. Exactness is the pipeline's: a message is claimed atomically
    before it is sent, and a job that dies here leaves `sending` contacts the sweeper recovers.
    """
    while message_ids and time.monotonic() < deadline:
        outcomes = messaging.deliver(message_ids)
        with runner.collecting_sends() as message_ids:
            feed_message_outcomes(outcomes)
    messaging.enqueue_messages(message_ids)


def call_apis(participation_ids: Iterable[int]) -> int:
    """Make the pending API calls of these participations, concurrently, and step each with its response.

    A call is made only while its participation still waits for it, and at
    most once at a time (a Redis lock per participation, node and visit); a
    retried job after a crash may repeat a call whose answer was not stored.
    """
    ids = sorted({int(pid) for pid in participation_ids})
    p = participation_table.c
    rows = db.session.execute(select(p.id, p.state, p.engine_state).where(p.id.in_(ids))).all()
    db.session.commit()
    redis = get_redis()
    calls, locks = [], []
    for row in rows:
        pending = (row.engine_state or {}).get("pending_api")
        if row.state != "active" or not pending:
            continue
        lock = redis.lock(
            f"jd:runner:api:{row.id}:{pending['node_id']}:{pending['visit']}",
            timeout=pending["timeout"] + 30,
            blocking=False,
        )
        if not lock.acquire(blocking=False):
            continue
        locks.append(lock)
        calls.append(
            http_calls.ApiCall(
                key=(row.id, pending["node_id"], pending["visit"]),
                method=pending["method"],
                url=pending["url"],
                headers=pending["headers"],
                body=pending["body"],
                timeout=pending["timeout"],
            )
        )
    try:
        results = http_calls.perform_calls(calls, allow_private=bool(current_app.config.get("API_NODE_ALLOW_PRIVATE")))
        answers = {result.key[0]: (call, result) for call, result in zip(calls, results)}

        def decide(row, state):
            call, result = answers[row.id]
            _pid, node_id, visit = call.key
            if state.status != "active" or state.node_id != node_id or state.visits.get(node_id) != visit:
                return None
            event = events.ApiResponse(result.status, result.body, result.error, result.duration_ms)
            return event, {"api": {"method": call.method, "url": call.url}}

        return len(_step(answers, decide))
    finally:
        for lock in locks:
            with contextlib.suppress(LockError):
                lock.release()


def on_message_outcomes(outcomes: Iterable) -> int:
    """Move journey contacts past their `message` node once the send has a final outcome, and send the
    messages that creates in this job (`send_inline`).

    Fed by the `messages` queue's `send_batch` with `messaging.Outcome`s;
    campaign messages and outcomes that will be retried are ignored.
    """
    deadline = time.monotonic() + INLINE_SEND_SECONDS
    with runner.collecting_sends() as sends:
        moved = feed_message_outcomes(outcomes)
    send_inline(sends, deadline)
    return moved


def feed_message_outcomes(outcomes: Iterable) -> int:
    """`on_message_outcomes` without sending in this thread: the next messages go to send jobs (the sweeper's
    way, which must stay quick)."""
    final = {o.message_id: o for o in outcomes if o.participation_id is not None and (o.ok or o.final)}
    if not final:
        return 0
    m = message_table.c
    rows = db.session.execute(
        select(m.id, m.participation_id, m.idempotency_key, m.sid).where(m.id.in_(list(final)))
    ).all()
    db.session.commit()
    try:
        return _feed_outcomes(
            [
                (
                    row.participation_id,
                    row.id,
                    row.idempotency_key,
                    row.sid,
                    final[row.id].ok,
                    final[row.id].error_message,
                )
                for row in rows
            ]
        )
    except Exception:
        # Do not wait a whole lease: have a flows job (with retries) read the outcomes back from the log.
        db.session.rollback()
        _enqueue("recover_sending", [(sorted({row.participation_id for row in rows}),)])
        raise


def recover_sending(participation_ids: Iterable[int]) -> int:
    """Resume `sending` participations whose message outcome never reached them.

    Accepted (has a sid) or finally failed: feed that outcome. Still `queued`
    (its job may be gone with a worker or a Redis flush): enqueue it again;
    the sender's atomic claim makes a second job harmless. `sending` rows are
    `recovery.requeue_stale`'s to recover.
    """
    p = participation_table.c
    rows = db.session.execute(
        select(p.id, p.engine_state).where(p.id.in_(list(participation_ids)), p.state == "sending")
    ).all()
    keys = {}
    for row in rows:
        stored = row.engine_state or {}
        node_id = stored.get("node_id")
        keys[idempotency_key(row.id, node_id, (stored.get("visits") or {}).get(node_id))] = row.id
    m = message_table.c
    messages = (
        db.session.execute(
            select(m.id, m.idempotency_key, m.status, m.sid, m.error_message, m.next_attempt_at).where(
                m.idempotency_key.in_(list(keys))
            )
        ).all()
        if keys
        else []
    )
    db.session.commit()
    now = utcnow()
    to_send, outcomes = [], []
    missing = set(keys) - {message.idempotency_key for message in messages}
    for key in missing:  # cannot happen (stored in one transaction), but must not leave the contact stuck
        outcomes.append((keys[key], None, key, None, False, "the message record of this step is missing"))
    for message in messages:
        pid = keys[message.idempotency_key]
        if message.sid is not None:
            outcomes.append((pid, message.id, message.idempotency_key, message.sid, True, None))
        elif message.status in NOT_DELIVERED_STATUSES:
            reason = message.error_message or f"message {message.status}"
            outcomes.append((pid, message.id, message.idempotency_key, None, False, reason))
        elif message.status == "queued" and (message.next_attempt_at is None or message.next_attempt_at <= now):
            to_send.append(message.id)
    messaging.enqueue_messages(to_send)
    return _feed_outcomes(outcomes) + len(to_send)
