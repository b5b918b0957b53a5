"""Journey runs: the one place where stored state meets the engine.

Everything a contact does in a run goes through here: load its
`Participation`, give the engine one event, store the new state with its
history (`Step` rows) and carry out the effects (messages through the same
pipeline as campaigns, API calls on the `flows` queue, timers in `wake_at`).

Exactness, the rules every function below keeps:

- A participation is written only with compare-and-set on `lock_version`
  (plus `SELECT … FOR UPDATE` on PostgreSQL), in the same transaction as its
  steps and the messages its step created. A writer that lost the race
  reloads and tries again, so two workers never both advance a contact, and a
  step is either wholly stored or not at all.
- Work is batched (hundreds of contacts per job, bulk inserts, one
  executemany UPDATE) and falls back to one contact at a time only when a
  compare-and-set fails.
- A message's idempotency key is `participation:node:visit` (unique), and
  the contact moves past a `message` node only on the outcome of *that* key,
  so a replayed job, a duplicated outcome or a late one never sends twice,
  skips a message or takes the wrong edge.
- Nothing waits only in Redis. Every non-final participation that expects
  something has `wake_at`: the real time of a delay or wait timeout, or a
  lease (`RUNNER_LEASE_SECONDS`) while a job should be working on it. The
  sweeper (`sweep`, run by every worker process) claims due participations
  atomically (skipping rows a job holds) and re-dispatches them: timers fire, lost jobs are
  redone, a `sending` contact whose message was accepted is advanced and one
  whose message sits `queued` outside any queue is re-enqueued. A Redis flush
  is noticed (a marker key disappears) and expires every lease at once.

Run statuses: `preparing` (participations being inserted), `active`, then
`completed` (no participation left in a non-final state) or `stopped`.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from redis.exceptions import LockError
from rq import Queue, Retry
from sqlalchemy import JSON, bindparam, func, literal, select, update

from app import engine
from app.contacts import audiences
from app.engine import effects, events
from app.extensions import db
from app.journeys import store as journeys
from app.models import (
    ACTIVE_STATES,
    Audience,
    AudienceContact,
    Contact,
    InboundMessage,
    Journey,
    JourneyVersion,
    Message,
    Participation,
    Run,
    Step,
    utcnow,
)
from app.queues import JOB_DEFAULTS, get_queue, get_redis
from app.runs import http_calls
from app.sending import messaging

BATCH_SIZE = 500  # participations per flows job
API_BATCH_SIZE = 50  # API calls per job (made concurrently)
PREPARE_CHUNK = 5000  # participations inserted per transaction when a run starts
SWEEP_LIMIT = 5000  # due participations claimed per sweep
CONFLICT_RETRIES = 5
DEFAULT_LEASE_SECONDS = 60.0
FLOWS_RETRY = Retry(max=3, interval=[1, 5, 15])
SWEEP_LOCK_KEY = "jd:runner:sweep-lock"
EPOCH_KEY = "jd:runner:epoch"
REQUEUE_STALE_KEY = "jd:runner:requeue-stale"
REQUEUE_STALE_EVERY = 5  # seconds between `messaging.requeue_stale()` calls, across all sweepers
FLOWS = "app.tasks.flows"

participation_table = Participation.__table__
message_table = Message.__table__
step_table = Step.__table__


class RunConflict(RuntimeError):
    """A participation kept changing under us (compare-and-set lost too many times)."""


# -- starting and stopping runs --------------------------------------------------


def start_run(journey: Journey, audience_id: int | None = None, contacts: list[dict] | None = None, user=None) -> Run:
    """Start `journey` for an audience or an inline list of contacts; returns at once.

    The run executes an immutable version (`journeys.version_for_run`; raises
    `journeys.InvalidJourney`). An audience's participations are inserted by
    the `prepare_run` job in chunks, so even 100,000 contacts start from a
    page; inline contacts (already in the request) are inserted here the same
    way. First steps are enqueued in batches. Raises LookupError for an
    unknown audience and ValueError for bad contacts (nothing written then).
    """
    if (audience_id is None) == (contacts is None):
        raise ValueError("give either audience_id or contacts")
    version = journeys.version_for_run(journey, user=user)
    contact_ids = None
    if audience_id is not None:
        if db.session.get(Audience, audience_id) is None:
            raise LookupError(f"no audience {audience_id}")
        total = db.session.scalar(
            select(func.count()).select_from(AudienceContact).where(AudienceContact.audience_id == audience_id)
        )
    else:
        try:
            contact_ids = audiences.upsert_contacts(contacts)
        except ValueError:
            db.session.rollback()
            raise
        total = len(contact_ids)
    run = Run(
        journey_id=journey.id,
        version_id=version.id,
        audience_id=audience_id,
        status="preparing",
        total=total,
        dry_run=bool(current_app.config.get("DRY_RUN")),
        created_by_id=getattr(user, "id", None),
    )
    db.session.add(run)
    db.session.commit()
    if contact_ids is None:
        _enqueue("prepare_run", [(run.id,)], timeout=3600)
    else:
        _prepare(run.id, contact_ids)
    return run


def prepare_run(run_id: int) -> int:
    """Insert an audience run's participations and enqueue their first steps; returns how many were new.

    Safe to run again (a retried job, or the sweeper redoing a lost one):
    existing participations are kept, and any whose first step was never
    enqueued is picked up by the sweeper when its lease ends.
    """
    run = db.session.get(Run, run_id)
    if run is None or run.status != "preparing":
        return 0
    contact_ids = audiences.contact_ids(run.audience_id) if run.audience_id is not None else []
    return _prepare(run_id, contact_ids)


def _prepare(run_id: int, contact_ids: list[int]) -> int:
    """Insert participations in chunks (one bulk INSERT and commit each), enqueue their first steps,
    then mark the run `active` with its real total."""
    inserted = 0
    for start in range(0, len(contact_ids), PREPARE_CHUNK):
        ids = _insert_participations(run_id, contact_ids[start : start + PREPARE_CHUNK])
        db.session.commit()
        inserted += len(ids)
        if _run_status(run_id) == "stopped":
            _stop_participations(run_id)
            return inserted
        _enqueue("advance", [(ids[i : i + BATCH_SIZE],) for i in range(0, len(ids), BATCH_SIZE)])
    total = db.session.scalar(select(func.count()).where(participation_table.c.run_id == run_id))
    db.session.execute(
        update(Run).where(Run.id == run_id, Run.status == "preparing").values(status="active", total=total)
    )
    db.session.commit()
    complete_runs([run_id])
    return inserted


def _insert_participations(run_id: int, contact_ids: list[int]) -> list[int]:
    """One INSERT … SELECT over these contacts (set-based, not a row of parameters each); returns the ids
    of the participations it created."""
    p = participation_table.c
    now = utcnow()
    rows = select(
        literal(run_id),
        Contact.id,
        literal("active"),
        literal({}, JSON),
        literal(now + _lease()),
        literal(0),
        literal(now),
        literal(now),
    ).where(Contact.id.in_(contact_ids))
    columns = [p.run_id, p.contact_id, p.state, p.engine_state, p.wake_at, p.lock_version, p.started_at, p.updated_at]
    insert = messaging.insert_ignore(participation_table, ["run_id", "contact_id"])
    return list(db.session.scalars(insert.from_select(columns, rows).returning(p.id)))


def stop_run(run: Run) -> int:
    """Stop a run: every non-final contact becomes `stopped` (one UPDATE) and its queued messages are
    canceled in the same transaction, so no job can claim one in between. Returns how many were stopped.

    A message already claimed by a sender (in flight to Twilio) cannot be called back.
    """
    stopped = _stop_participations(run.id, commit=False)
    _cancel_queued(participation_table.c.run_id == run.id)
    db.session.execute(
        update(Run)
        .where(Run.id == run.id, Run.status.in_(("preparing", "active")))
        .values(status="stopped", finished_at=utcnow())
    )
    db.session.commit()
    return stopped


def _stop_participations(run_id: int, commit: bool = True) -> int:
    p = participation_table.c
    _lock_in_id_order(p.run_id == run_id, p.state.in_(ACTIVE_STATES))
    count = db.session.execute(
        update(participation_table)
        .where(p.run_id == run_id, p.state.in_(ACTIVE_STATES))
        .values(state="stopped", wake_at=None, lock_version=p.lock_version + 1, updated_at=utcnow())
    ).rowcount
    if commit:
        db.session.commit()
    return count


def _cancel_queued(*participation_criteria) -> None:
    """Cancel the queued messages of these participations, locking them in id order as senders do."""
    m = message_table.c
    queued = list(
        db.session.scalars(
            select(m.id)
            .join(participation_table, participation_table.c.id == m.participation_id)
            .where(m.status == "queued", *participation_criteria)
            .order_by(m.id)
            .with_for_update(of=message_table)
        )
    )
    for start in range(0, len(queued), PREPARE_CHUNK):
        messaging.cancel_messages(m.id.in_(queued[start : start + PREPARE_CHUNK]), commit=False)


def opt_out_contact(contact_id: int | None) -> int:
    """End every non-final participation of this contact as `opted_out` and cancel their queued messages."""
    if contact_id is None:
        return 0
    p = participation_table.c
    now = utcnow()
    _lock_in_id_order(p.contact_id == contact_id, p.state.in_(ACTIVE_STATES))
    ended = db.session.execute(
        update(participation_table)
        .where(p.contact_id == contact_id, p.state.in_(ACTIVE_STATES))
        .values(state="opted_out", wake_at=None, lock_version=p.lock_version + 1, updated_at=now)
        .returning(p.id, p.run_id, p.node_id)
    ).all()
    if ended:
        db.session.execute(
            step_table.insert(),
            [
                {
                    "participation_id": pid,
                    "run_id": run_id,
                    "kind": "finish",
                    "node_id": node_id,
                    "at": now,
                    "detail": {"status": "opted_out", "reason": "the contact opted out (replied STOP)"},
                }
                for pid, run_id, node_id in ended
            ],
        )
        _cancel_queued(p.id.in_([row.id for row in ended]))
    db.session.commit()
    complete_runs({row.run_id for row in ended})
    return len(ended)


def _lock_in_id_order(*criteria) -> None:
    """On PostgreSQL, lock the rows a bulk UPDATE will change in id order, as batches do (no deadlock)."""
    p = participation_table.c
    db.session.execute(select(p.id).where(*criteria).order_by(p.id).with_for_update()).all()


def complete_runs(run_ids: Iterable[int]) -> None:
    """Mark `completed` the active runs among these with no participation left in a non-final state."""
    p = participation_table.c
    for run_id in set(run_ids):
        pending = db.session.scalar(select(p.id).where(p.run_id == run_id, p.state.in_(ACTIVE_STATES)).limit(1))
        if pending is None:
            db.session.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "active")
                .values(status="completed", finished_at=utcnow())
            )
    db.session.commit()


def _run_status(run_id: int) -> str | None:
    return db.session.scalar(select(Run.status).where(Run.id == run_id))


# -- the events that move contacts -------------------------------------------------


def advance(participation_ids: Iterable[int]) -> int:
    """Start participations that have not started; hand those waiting on an API call to `call_apis`.

    The first step of every contact (from `prepare_run`), and the sweeper's
    redo of an `active` participation whose job was lost.
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

    results = _step(participation_ids, decide)
    _enqueue_api_calls(pending_api)
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

    return len(_step(wanted, decide))


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
    """Move journey contacts past their `message` node once the send has a final outcome.

    Fed by the `messages` queue's `send_batch` with `messaging.Outcome`s;
    campaign messages and outcomes that will be retried are ignored.
    """
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


def _feed_outcomes(items: list[tuple]) -> int:
    """Step `MessageOutcome` for (participation, message id, key, sid, ok, error) when the key is current."""
    by_participation = {item[0]: item for item in items}

    def decide(row, state):
        _pid, message_id, key, sid, ok, error = by_participation[row.id]
        if state.status != "sending" or key != message_key(row.id, state):
            return None
        return events.MessageOutcome(ok, error), {"outcome": {"message_id": message_id, "sid": sid}}

    return len(_step(by_participation, decide))


def recover_sending(participation_ids: Iterable[int]) -> int:
    """Resume `sending` participations whose message outcome never reached them.

    Accepted (has a sid) or finally failed: feed that outcome. Still `queued`
    (its job may be gone with a worker or a Redis flush): enqueue it again;
    the sender's atomic claim makes a second job harmless. `sending` rows are
    `messaging.requeue_stale`'s to recover.
    """
    p = participation_table.c
    rows = db.session.execute(
        select(p.id, p.engine_state).where(p.id.in_(list(participation_ids)), p.state == "sending")
    ).all()
    keys = {}
    for row in rows:
        stored = row.engine_state or {}
        node_id = stored.get("node_id")
        keys[f"{row.id}:{node_id}:{(stored.get('visits') or {}).get(node_id)}"] = row.id
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
        elif message.status in ("failed", "undelivered", "canceled"):
            reason = message.error_message or f"message {message.status}"
            outcomes.append((pid, message.id, message.idempotency_key, None, False, reason))
        elif message.status == "queued" and (message.next_attempt_at is None or message.next_attempt_at <= now):
            to_send.append(message.id)
    messaging.enqueue_messages(to_send)
    return _feed_outcomes(outcomes) + len(to_send)


def handle_inbound(inbound_id: int) -> str | None:
    """Route a stored inbound message to the contact's waiting participation; return its outcome.

    Outcomes: `matched` (an edge was taken, `fallback` included), `unmatched`
    (still waiting: nothing matched and the wait has no fallback), `not_waiting`,
    `unknown_contact`. Among several waiting participations, the one of the
    most recently started run whose channel is the message's wins. The reply
    is kept on the inbound row either way, and on the step history of the
    participation it reached.
    """
    inbound = db.session.get(InboundMessage, inbound_id)
    if inbound is None or inbound.outcome != "received":
        return inbound.outcome if inbound is not None else None
    contact_id = inbound.contact_id or db.session.scalar(
        select(Contact.id).where(Contact.phone == messaging.bare_phone(inbound.from_phone))
    )
    outcome, participation_id = "unknown_contact", None
    if contact_id is not None:
        outcome, participation_id = "not_waiting", _latest_participation(contact_id)
        for candidate in _waiting_participations(contact_id, inbound.channel):
            reply = events.Reply(inbound.body or "", inbound.payload)
            results = _step(
                [candidate],
                lambda row, state: (
                    (reply, {"reply": {"inbound_id": inbound_id}}) if state.status == "waiting" else None
                ),
            )
            if candidate in results:
                moved = any(entry.get("kind") == "edge" for entry in results[candidate].trail)
                outcome, participation_id = ("matched" if moved else "unmatched"), candidate
                break
    if outcome == "not_waiting" and participation_id is not None:
        _record_unrouted_reply(participation_id, inbound)
    db.session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == inbound_id, InboundMessage.outcome == "received")
        .values(outcome=outcome, contact_id=contact_id, participation_id=participation_id)
    )
    db.session.commit()
    return outcome


def _waiting_participations(contact_id: int, channel: str) -> list[int]:
    """Waiting participations of the contact on this channel, most recently started run first."""
    p = participation_table.c
    rows = db.session.execute(
        select(p.id, Run.version_id, JourneyVersion.created_at)
        .join(Run, Run.id == p.run_id)
        .join(JourneyVersion, JourneyVersion.id == Run.version_id)
        .where(p.contact_id == contact_id, p.state == "waiting")
        .order_by(Run.created_at.desc(), Run.id.desc())
    ).all()
    found = []
    for pid, version_id, created_at in rows:
        last_channel = db.session.scalar(
            select(message_table.c.channel)
            .where(message_table.c.participation_id == pid)
            .order_by(message_table.c.id.desc())
            .limit(1)
        )
        if (last_channel or journey_for_version(version_id, created_at).channel) == channel:
            found.append(pid)
    return found


def _latest_participation(contact_id: int) -> int | None:
    p = participation_table.c
    return db.session.scalar(
        select(p.id)
        .join(Run, Run.id == p.run_id)
        .where(p.contact_id == contact_id)
        .order_by(Run.created_at.desc(), p.id.desc())
        .limit(1)
    )


def _record_unrouted_reply(participation_id: int, inbound: InboundMessage) -> None:
    p = participation_table.c
    run_id, node_id = db.session.execute(select(p.run_id, p.node_id).where(p.id == participation_id)).one()
    db.session.execute(
        step_table.insert().values(
            participation_id=participation_id,
            run_id=run_id,
            kind="reply",
            node_id=node_id,
            at=utcnow(),
            detail={
                "text": inbound.body,
                "payload": inbound.payload,
                "matched": False,
                "inbound_id": inbound.id,
                "ignored": "not waiting",
            },
        )
    )


# -- the sweeper -------------------------------------------------------------------


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
        counts = _dispatch_due(now, limit)
        counts["preparing"] = _resume_preparing(now)
        if redis.set(REQUEUE_STALE_KEY, "1", nx=True, ex=REQUEUE_STALE_EVERY):
            recovery = messaging.requeue_stale()
            counts["requeued_messages"] = recovery.requeued
            counts["reconciled_messages"] = on_message_outcomes(recovery.accepted)
        return counts
    finally:
        with contextlib.suppress(LockError):
            lock.release()


def _expire_leases(now: datetime) -> None:
    """Redis is new or was flushed: every job may be gone, so every lease is due now."""
    p = participation_table.c
    _lock_in_id_order(p.state.in_(("active", "sending")))
    count = db.session.execute(
        update(participation_table).where(p.state.in_(("active", "sending"))).values(wake_at=now)
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
        if row.state in ("active", "sending") and now - row.updated_at > lease
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


# -- stepping: load, step, store with compare-and-set, carry out -------------------

Decision = tuple[Any, dict] | None


@dataclass
class _Batch:
    """What one stored batch asks for once it is committed."""

    results: dict[int, engine.StepResult] = field(default_factory=dict)
    send: list[int] = field(default_factory=list)  # new queued messages
    resume: list[tuple] = field(default_factory=list)  # messages that already existed: (pid, id, key, …)
    api: list[int] = field(default_factory=list)
    finished_runs: set[int] = field(default_factory=set)

    def merge(self, other: _Batch) -> None:
        self.results.update(other.results)
        self.send += other.send
        self.resume += other.resume
        self.api += other.api
        self.finished_runs |= other.finished_runs


def _step(participation_ids: Iterable[int], decide: Callable[[Any, engine.ContactState], Decision]) -> dict:
    """Step every participation `decide` gives an event to, store it all, then carry out the effects.

    `decide(row, state)` returns `(event, extra trail details by kind)` or
    None to leave the participation alone. Returns the engine results by id.
    """
    ids = sorted({int(pid) for pid in participation_ids})
    if not ids:
        return {}
    batch = _store_batch(ids, decide)
    if batch is not None:
        _carry_out(batch)
        return batch.results
    batch = _Batch()  # someone else changed one of them: go one by one, reloading on conflict
    try:
        for pid in ids:
            for _attempt in range(CONFLICT_RETRIES):
                single = _store_batch([pid], decide)
                if single is not None:
                    batch.merge(single)
                    break
            else:
                raise RunConflict(f"participation {pid} kept changing; giving up for now")
    finally:
        _carry_out(batch)  # what was stored must be carried out, even if a later one gave up
    return batch.results


def _store_batch(ids: list[int], decide) -> _Batch | None:
    """Step and store in one transaction; None (rolled back) if a compare-and-set failed."""
    rows = _load(ids)
    batch, updates, steps, sends = _Batch(), [], [], []
    now, now_epoch, rng = utcnow(), time.time(), random.Random()
    for row in rows:
        state = _state_of(row)
        decision = decide(row, state)
        if decision is None:
            continue
        event, extra = decision
        journey = journey_for_version(row.version_id, row.version_created_at)
        result = _engine_step(journey, state, event, now_epoch, rng, row.id)
        batch.results[row.id] = result
        steps += _trail_steps(row, state, result, extra, now)
        if result.state == state:
            continue
        stored = {key: value for key, value in result.state.to_json().items() if key != "fields"}
        for effect in result.effects:
            if isinstance(effect, effects.SendMessage):
                sends.append((row, effect))
            elif isinstance(effect, effects.CallApi):
                stored["pending_api"] = asdict(effect)
                batch.api.append(row.id)
        finish = next((e for e in result.effects if isinstance(e, effects.Finish)), None)
        if result.state.is_final:
            batch.finished_runs.add(row.run_id)
        updates.append(
            {
                "b_id": row.id,
                "b_version": row.lock_version,
                "b_state": result.state.status,
                "b_node_id": result.state.node_id,
                "b_engine_state": stored,
                "b_wake_at": _wake_at(row, state, result, now),
                "b_updated_at": now,
                "b_error": finish.reason if finish and result.state.status in ("failed", "filtered") else None,
            }
        )
    if updates:
        p = participation_table.c
        statement = (
            update(participation_table)
            .where(p.id == bindparam("b_id"), p.lock_version == bindparam("b_version"))
            .values(
                state=bindparam("b_state"),
                node_id=bindparam("b_node_id"),
                engine_state=bindparam("b_engine_state"),
                wake_at=bindparam("b_wake_at"),
                error=bindparam("b_error"),
                updated_at=bindparam("b_updated_at"),
                lock_version=p.lock_version + 1,
            )
        )
        if db.session.execute(statement, updates).rowcount != len(updates):
            db.session.rollback()
            return None
    steps += _insert_messages(sends, batch, now)
    if steps:
        db.session.execute(step_table.insert(), steps)
    db.session.commit()
    return batch


def _load(ids: list[int]):
    """The participations with what stepping needs, locked on PostgreSQL until the commit."""
    p = participation_table.c
    query = (
        select(
            p.id,
            p.run_id,
            p.contact_id,
            p.state,
            p.node_id,
            p.engine_state,
            p.wake_at,
            p.lock_version,
            Contact.phone,
            Contact.name,
            Contact.fields,
            Run.version_id,
            JourneyVersion.created_at.label("version_created_at"),
        )
        .join(Contact, Contact.id == p.contact_id)
        .join(Run, Run.id == p.run_id)
        .join(JourneyVersion, JourneyVersion.id == Run.version_id)
        .where(p.id.in_(ids))
        .order_by(p.id)
        .with_for_update(of=participation_table)
    )
    return db.session.execute(query).all()


def _state_of(row) -> engine.ContactState:
    """The stored engine state with the contact's current fields (not stored per participation)."""
    fields = dict(row.fields or {})
    fields["phone"] = row.phone
    if row.name and not fields.get("name"):
        fields["name"] = row.name
    stored = row.engine_state or {}
    if not stored:
        return engine.ContactState(fields=fields)
    return engine.ContactState.from_json({**stored, "fields": fields})


def _engine_step(journey, state, event, now_epoch: float, rng, pid: int) -> engine.StepResult:
    """`engine.step`, except that a bug in it fails this one contact visibly instead of wedging the batch."""
    try:
        return engine.step(journey, state, event, now=now_epoch, rng=rng)
    except Exception as error:
        current_app.logger.exception("engine step failed for participation %s", pid)
        message = f"internal error while stepping: {type(error).__name__}: {error}"
        failed = engine.ContactState(state.node_id, "failed", state.variables, state.visits, state.fields)
        return engine.StepResult(failed, (effects.Finish("failed", message),), ({"kind": "error", "message": message},))


def _wake_at(row, before: engine.ContactState, result: engine.StepResult, now: datetime) -> datetime | None:
    """When the sweeper should look at this participation next (None: only an event moves it)."""
    state = result.state
    if state.is_final:
        return None
    if state.status == "sending":
        return now + _lease()
    if state.status == "active":
        call = next((e for e in result.effects if isinstance(e, effects.CallApi)), None)
        return now + timedelta(seconds=call.timeout) + _lease() if call else row.wake_at
    wakes = [e for e in result.effects if isinstance(e, effects.ScheduleWake)]
    entered = state.node_id != before.node_id or state.visits.get(state.node_id) != before.visits.get(state.node_id)
    if wakes:
        return _from_epoch(wakes[-1].at)
    return None if entered else row.wake_at


def _trail_steps(row, before: engine.ContactState, result: engine.StepResult, extra: dict, now) -> list[dict]:
    """The engine's trail as `Step` rows, with the shell's details (message id, URL, inbound id) added."""
    current, steps = before.node_id, []
    for entry in result.trail:
        kind = entry["kind"]
        if kind == "enter":
            current = entry["node"]
        node_id = entry.get("node") or entry.get("from") or current
        detail = {key: value for key, value in entry.items() if key not in ("kind", "node")}
        detail.update(extra.get(kind, {}))
        steps.append(
            {
                "participation_id": row.id,
                "run_id": row.run_id,
                "kind": kind,
                "node_id": node_id,
                "detail": detail,
                "at": now,
            }
        )
    return steps


def _insert_messages(sends: list[tuple], batch: _Batch, now: datetime) -> list[dict]:
    """Insert-or-get the message rows of `SendMessage` effects; return their `message` steps.

    A key that already exists is not sent again: if it was accepted (or
    failed for good) its outcome is fed after the commit instead.
    """
    if not sends:
        return []
    dry_run = bool(current_app.config.get("DRY_RUN"))
    rows = {}
    for row, effect in sends:
        key = f"{row.id}:{effect.node_id}:{effect.visit}"
        rows[key] = {
            "participation_id": row.id,
            "node_id": effect.node_id,
            "idempotency_key": key,
            "contact_id": row.contact_id,
            "to_phone": row.phone,
            "channel": effect.channel,
            "body": effect.body,
            "content_sid": effect.content_sid,
            "content_variables": effect.content_variables,
            "media_url": effect.media_url,
            "status": "queued",
            "attempts": 0,
            "dry_run": dry_run,
            "created_at": now,
            "updated_at": now,
        }
    m = message_table.c
    # No RETURNING: with many rows it is several times slower on PostgreSQL than one SELECT after. Rows
    # this INSERT wrote carry its `created_at`; an older one was there before (a replayed step).
    db.session.execute(messaging.insert_ignore(message_table, ["idempotency_key"]), list(rows.values()))
    inserted = {}
    for found in db.session.execute(
        select(m.id, m.idempotency_key, m.status, m.sid, m.error_message, m.created_at).where(
            m.idempotency_key.in_(list(rows))
        )
    ):
        pid = rows[found.idempotency_key]["participation_id"]
        if found.created_at == now:
            inserted[found.idempotency_key] = found.id
        elif found.sid is not None:
            batch.resume.append((pid, found.id, found.idempotency_key, found.sid, True, None))
        elif found.status in ("failed", "undelivered", "canceled"):
            batch.resume.append((pid, found.id, found.idempotency_key, None, False, found.error_message))
        elif found.status == "queued":
            batch.send.append(found.id)
    batch.send += list(inserted.values())
    steps = []
    for row, effect in sends:
        key = f"{row.id}:{effect.node_id}:{effect.visit}"
        detail = {"message_id": inserted.get(key), "status": "queued", "channel": effect.channel}
        if effect.missing:
            detail["missing"] = list(effect.missing)
        if key in inserted:
            steps.append(
                {
                    "participation_id": row.id,
                    "run_id": row.run_id,
                    "kind": "message",
                    "node_id": effect.node_id,
                    "detail": detail,
                    "at": now,
                }
            )
    return steps


def _carry_out(batch: _Batch) -> None:
    """After the commit: enqueue messages and API calls, feed known outcomes, complete finished runs."""
    messaging.enqueue_messages(batch.send)
    _enqueue_api_calls(batch.api)
    if batch.resume:
        _feed_outcomes(batch.resume)
    if batch.finished_runs:
        complete_runs(batch.finished_runs)


def message_key(participation_id: int, state: engine.ContactState) -> str:
    """The idempotency key of the message a `sending` participation waits for."""
    return f"{participation_id}:{state.node_id}:{state.visits.get(state.node_id)}"


# -- helpers -------------------------------------------------------------------------

_parsed_versions: dict[tuple, engine.Definition] = {}


def journey_for_version(version_id: int, created_at: datetime | None = None) -> engine.Definition:
    """The parsed journey of a version, cached in-process (versions never change).

    `created_at` is part of the key so a reused id (a test database emptied
    and refilled) never returns another version's journey.
    """
    if created_at is None:
        created_at = db.session.scalar(select(JourneyVersion.created_at).where(JourneyVersion.id == version_id))
    key = (version_id, created_at)
    journey = _parsed_versions.get(key)
    if journey is None:
        definition = db.session.scalar(select(JourneyVersion.definition).where(JourneyVersion.id == version_id))
        journey = engine.parse(definition)
        if len(_parsed_versions) > 256:
            _parsed_versions.clear()
        _parsed_versions[key] = journey
    return journey


def _enqueue_api_calls(participation_ids: list[int]) -> None:
    ids = sorted(set(participation_ids))
    _enqueue("call_apis", [(ids[i : i + API_BATCH_SIZE],) for i in range(0, len(ids), API_BATCH_SIZE)])


def _enqueue(job_name: str, arg_lists: list[tuple], timeout: int = 600) -> None:
    """Enqueue `app.tasks.flows.<job_name>` once per argument tuple, in one Redis round trip."""
    if not arg_lists:
        return
    queue = get_queue("flows")
    jobs = [
        Queue.prepare_data(f"{FLOWS}.{job_name}", args=args, timeout=timeout, retry=FLOWS_RETRY, **JOB_DEFAULTS)
        for args in arg_lists
    ]
    with get_redis().pipeline() as pipe:
        queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()


def _lease() -> timedelta:
    return timedelta(seconds=float(current_app.config.get("RUNNER_LEASE_SECONDS") or DEFAULT_LEASE_SECONDS))


def _from_epoch(at: float | None) -> datetime | None:
    return datetime.fromtimestamp(at, UTC).replace(tzinfo=None) if at is not None else None
