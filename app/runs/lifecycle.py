"""Starting, preparing and stopping runs, and opting a contact out of all of them."""

from __future__ import annotations

from collections.abc import Iterator

from flask import current_app
from sqlalchemy import JSON, func, literal, select, update

from app.contacts import audiences
from app.extensions import db
from app.journeys import store as journeys
from app.models import (
    ACTIVE_STATES,
    LIVE_RUN_STATUSES,
    SCHEDULED,
    Audience,
    AudienceContact,
    Contact,
    Journey,
    Run,
    bulk,
    message_table,
    participation_table,
    step_table,
    utcnow,
)
from app.runs import listening
from app.runs.membership import active_contact_ids
from app.runs.runner import BATCH_SIZE, _enqueue, _lease, _run_status, complete_runs
from app.sending import log, messaging

PREPARE_CHUNK = 5000  # participations inserted per transaction when a run starts
FIRST_CHUNK = 500  # the first chunk is small, so the first contacts start (and are sent to) at once


def start_run(
    journey: Journey, audience_id: int | None = None, contacts: list[dict] | None = None, user=None, start_at=None
) -> Run:
    """Start `journey` for an audience or an inline list of contacts; returns at once.

    The run executes an immutable version (`journeys.version_for_run`; raises
    `journeys.InvalidJourney`). An audience's participations are inserted by
    the `prepare_run` job in chunks, so even 100,000 contacts start from a
    page; inline contacts (already in the request) are inserted here the same
    way. First steps are enqueued in batches. With `start_at` (naive UTC) the
    run is stored `scheduled` and the sweeper starts it then (`schedule.start_due`;
    inline contacts are saved now, their ids kept on the run). Raises LookupError for an
    unknown audience and ValueError for bad contacts (nothing written then).
    """
    if (audience_id is None) == (contacts is None):
        raise ValueError("give either audience_id or contacts")
    version = journeys.version_for_run(journey, user=user)
    listening.sync(journey, version, arm=False, user=user, dry_run=bool(current_app.config.get("DRY_RUN")))
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
        status=SCHEDULED if start_at else "preparing",
        start_at=start_at,
        scheduled_contact_ids=contact_ids if start_at else None,
        total=total,
        dry_run=bool(current_app.config.get("DRY_RUN")),
        created_by_id=getattr(user, "id", None),
    )
    db.session.add(run)
    db.session.commit()
    if start_at:
        return run
    if contact_ids is None:
        _enqueue("prepare_run", [(run.id,)], timeout=3600)
    else:
        _prepare(run.id, journey.id, contact_ids)
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
    if run.audience_id is not None:
        contact_ids = audiences.contact_ids(run.audience_id)
    else:
        contact_ids = list(run.scheduled_contact_ids or [])  # a scheduled run of inline contacts
    return _prepare(run_id, run.journey_id, contact_ids)


def _prepare(run_id: int, journey_id: int, contact_ids: list[int]) -> int:
    """Insert participations in chunks (one bulk INSERT and commit each), enqueue their first steps,
    then mark the run `active` with its real total and how many contacts it left out as already active."""
    inserted, left_out, size = 0, 0, step_batch_size()
    for chunk in _chunks(contact_ids):
        ids, chunk_left_out = _insert_participations(run_id, journey_id, chunk)
        db.session.commit()
        inserted, left_out = inserted + len(ids), left_out + chunk_left_out
        if _run_status(run_id) == "stopped":
            _stop_participations(run_id, commit=False)
            db.session.execute(update(Run).where(Run.id == run_id).values(already_active=left_out))
            db.session.commit()
            return inserted
        _enqueue("advance", [(ids[i : i + size],) for i in range(0, len(ids), size)])
    total = db.session.scalar(select(func.count()).where(participation_table.c.run_id == run_id))
    db.session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == "preparing")
        .values(status="active", total=total, already_active=left_out)
    )
    db.session.commit()
    bulk.refresh_statistics_after(inserted, participation_table)
    complete_runs([run_id])
    return inserted


def _chunks(contact_ids: list[int]) -> Iterator[list[int]]:
    """`FIRST_CHUNK` contacts, then `PREPARE_CHUNK` at a time: each chunk's first steps are enqueued as soon
    as it is inserted, so the first messages leave while the rest of the audience is still being prepared."""
    start = 0
    while start < len(contact_ids):
        size = FIRST_CHUNK if start == 0 else PREPARE_CHUNK
        yield contact_ids[start : start + size]
        start += size


def step_batch_size() -> int:
    """Contacts per first-step job: as many as one send job sends (their messages are sent by that job)."""
    return max(1, min(BATCH_SIZE, messaging.batch_size(current_app.config)))


def _insert_participations(run_id: int, journey_id: int, contact_ids: list[int]) -> tuple[list[int], int]:
    """One INSERT … SELECT over these contacts (set-based, not a row of parameters each), leaving out those
    active in another run of the journey; returns the ids of the participations it created and how many
    contacts it left out.

    A contact is in one run of a journey at a time, as the pre-flight promised: a second start would send
    it every message twice. The choice is made inside the INSERT, and the journey's row is locked until the
    commit (PostgreSQL; SQLite has one writer), so two runs of it starting at once cannot both take a contact.
    """
    p = participation_table.c
    db.session.execute(select(Journey.id).where(Journey.id == journey_id).with_for_update())
    active_elsewhere = active_contact_ids(journey_id, other_than_run=run_id).where(p.contact_id.in_(contact_ids))
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
    ).where(Contact.id.in_(contact_ids), Contact.id.not_in(active_elsewhere))
    columns = [p.run_id, p.contact_id, p.state, p.engine_state, p.wake_at, p.lock_version, p.started_at, p.updated_at]
    insert = bulk.insert_ignore(participation_table, ["run_id", "contact_id"])
    ids = list(db.session.scalars(insert.from_select(columns, rows).returning(p.id)))
    in_this_run = select(p.id).where(p.run_id == run_id, p.contact_id == Contact.id).exists()
    left_out = db.session.scalar(select(func.count(Contact.id)).where(Contact.id.in_(contact_ids), ~in_this_run))
    return ids, left_out


def stop_run(run: Run) -> int:
    """Stop a run: every non-final contact becomes `stopped` (one UPDATE) and its queued messages are
    canceled in the same transaction, so no job can claim one in between. Returns how many were stopped.

    A message already claimed by a sender (in flight to Twilio) cannot be called back.
    """
    stopped = _stop_participations(run.id, commit=False)
    _cancel_queued(participation_table.c.run_id == run.id)
    db.session.execute(
        update(Run)
        .where(Run.id == run.id, Run.status.in_((SCHEDULED, *LIVE_RUN_STATUSES)))
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
        log.cancel_messages(m.id.in_(queued[start : start + PREPARE_CHUNK]), commit=False)


OPTED_OUT_BY_REPLY = "the contact opted out (replied STOP)"


def opt_out_contact(contact_id: int | None, reason: str = OPTED_OUT_BY_REPLY) -> int:
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
                    "detail": {"status": "opted_out", "reason": reason},
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
