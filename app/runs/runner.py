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
  UPDATE of the batch) and falls back to one contact at a time only when a
  compare-and-set fails. A worker job sends the messages its own steps
  created itself (`collecting_sends`, `advancing.send_inline`), so a
  journey's messages need no queue round trip each.
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

import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from rq import Queue, Retry
from sqlalchemy import select, update

from app import engine
from app.engine import effects, events
from app.extensions import db
from app.journeys.versions import journey_for_version
from app.models import (
    ACTIVE_STATES,
    Contact,
    JourneyVersion,
    Run,
    bulk,
    participation_table,
    step_table,
    utcnow,
)
from app.queues import JOB_DEFAULTS, get_queue, get_redis
from app.runs import contact_fields, message_cap
from app.runs.message_rows import _insert_messages, idempotency_key
from app.runs.quiet_hours import held_until
from app.sending import messaging

BATCH_SIZE = 500  # participations per flows job
API_BATCH_SIZE = 50  # API calls per job (made concurrently)
CONFLICT_RETRIES = 5
DEFAULT_LEASE_SECONDS = 60.0
FLOWS_RETRY = Retry(max=3, interval=[1, 5, 15])
FLOWS = "app.tasks.flows"


class RunConflict(RuntimeError):
    """A participation kept changing under us (compare-and-set lost too many times)."""


# -- starting and stopping runs --------------------------------------------------


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


# -- the sweeper -------------------------------------------------------------------


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


@dataclass
class _StepWork:
    """What stepping a batch of rows gathers before it is written in one go."""

    batch: _Batch = field(default_factory=_Batch)
    updates: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    sends: list[tuple] = field(default_factory=list)
    contact_values: dict[int, dict] = field(default_factory=dict)
    held: dict[int, datetime] = field(default_factory=dict)  # pid -> when its send window opens


def _store_batch(ids: list[int], decide) -> _Batch | None:
    """Step and store in one transaction; None (rolled back) if a compare-and-set failed."""
    work = _StepWork()
    now, now_epoch, rng = utcnow(), time.time(), random.Random()
    limit = int(current_app.config.get("MAX_MESSAGES_PER_CONTACT") or 0)
    for row in _load(ids):
        state = _state_of(row)
        decision = decide(row, state)
        if decision is not None:
            _step_row(work, row, state, decision, (now, now_epoch, rng, limit))
    if work.updates and not _save_participations(work.updates):
        db.session.rollback()
        return None
    contact_fields.save(work.contact_values)
    work.steps += _insert_messages(work.sends, work.batch, now, work.held)
    bulk.insert_rows(step_table, work.steps)
    db.session.commit()
    return work.batch


def _step_row(work: _StepWork, row, state, decision, clock) -> None:
    """Give one participation its event and gather what to write: its update, steps, messages, fields."""
    now, now_epoch, rng, limit = clock
    event, extra = decision
    journey = journey_for_version(row.version_id, row.version_created_at)
    result = message_cap.capped(journey, state, _engine_step(journey, state, event, now_epoch, rng, row.id), limit)
    work.batch.results[row.id] = result
    if values := contact_fields.values_to_save(result.trail):
        work.contact_values.setdefault(row.contact_id, {}).update(values)
    work.steps += _trail_steps(row, state, result, extra, now)
    if result.state == state:
        return
    stored = {key: value for key, value in result.state.to_json().items() if key != "fields"}
    for effect in result.effects:
        if isinstance(effect, effects.SendMessage):
            work.sends.append((row, effect))
            if opening := held_until(journey, row, now):
                work.held[row.id] = opening
        elif isinstance(effect, effects.CallApi):
            stored["pending_api"] = asdict(effect)
            work.batch.api.append(row.id)
    finish = next((e for e in result.effects if isinstance(e, effects.Finish)), None)
    if result.state.is_final:
        work.batch.finished_runs.add(row.run_id)
    work.updates.append(
        {
            "b_id": row.id,
            "b_version": row.lock_version,
            "b_state": "delayed" if row.id in work.held else result.state.status,
            "b_node_id": result.state.node_id,
            "b_engine_state": stored,
            "b_wake_at": work.held.get(row.id) or _wake_at(row, state, result, now),
            "b_updated_at": now,
            "b_error": finish.reason if finish and result.state.status in ("failed", "filtered") else None,
        }
    )


def _save_participations(updates: list[dict]) -> bool:
    """One UPDATE of the batch with compare-and-set on `lock_version`; False when any row lost the race."""
    return _PARTICIPATION_UPDATES.execute(updates).rowcount == len(updates)


def _participation_update(row):
    p = participation_table.c
    return (
        update(participation_table)
        .where(p.id == row.b_id, p.lock_version == row.b_version)
        .values(
            state=row.b_state,
            node_id=row.b_node_id,
            engine_state=row.b_engine_state,
            wake_at=row.b_wake_at,
            error=row.b_error,
            updated_at=row.b_updated_at,
            lock_version=p.lock_version + 1,
        )
    )


_PARTICIPATION_UPDATES = bulk.PerRow(
    {
        f"b_{name}": participation_table.c[name].type
        for name in ("id", "state", "node_id", "engine_state", "wake_at", "error", "updated_at")
    }
    | {"b_version": participation_table.c.lock_version.type},
    _participation_update,
)


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


_collected_sends: ContextVar[list[int] | None] = ContextVar("collected_sends", default=None)


@contextmanager
def collecting_sends() -> Iterator[list[int]]:
    """Inside this block the messages that steps create are collected into the yielded list, for the
    caller (a worker job) to send itself, instead of being enqueued as send jobs. If the block fails,
    what was collected is enqueued after all: stored messages are never left without a job."""
    collected: list[int] = []
    token = _collected_sends.set(collected)
    try:
        yield collected
    except BaseException:
        messaging.enqueue_messages(collected)
        raise
    finally:
        _collected_sends.reset(token)


def _carry_out(batch: _Batch) -> None:
    """After the commit: send or collect messages, enqueue API calls, feed known outcomes, complete runs."""
    collected = _collected_sends.get()
    if collected is None:
        messaging.enqueue_messages(batch.send)
    else:
        collected.extend(batch.send)
    _enqueue_api_calls(batch.api)
    if batch.resume:
        _feed_outcomes(batch.resume)
    if batch.finished_runs:
        complete_runs(batch.finished_runs)


def message_key(participation_id: int, state: engine.ContactState) -> str:
    """The idempotency key of the message a `sending` participation waits for."""
    return idempotency_key(participation_id, state.node_id, state.visits.get(state.node_id))


# -- helpers -------------------------------------------------------------------------


def enqueue_prune(run_id: int) -> None:
    """Have a worker prune this finished run (`app.runs.prune`): a big run's history takes a while to delete."""
    _enqueue("prune_run", [(run_id,)], timeout=3600)


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


def _feed_outcomes(items: list[tuple]) -> int:
    """Step `MessageOutcome` for (participation, message id, key, sid, ok, error) when the key is current."""
    by_participation = {item[0]: item for item in items}

    def decide(row, state):
        _pid, message_id, key, sid, ok, error = by_participation[row.id]
        if state.status != "sending" or key != message_key(row.id, state):
            return None
        return events.MessageOutcome(ok, error), {"outcome": {"message_id": message_id, "sid": sid}}

    return len(_step(by_participation, decide))
