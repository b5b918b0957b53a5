"""Keyword triggers at run time: a journey's standing `listening` run, and contacts texting their way in.

A journey whose published version has `triggers` listens through one run of
status `listening` (kind `trigger`) that executes that version. An inbound
message that reaches no waiting contact (STOP/START and replies come first,
in the webhook and `app.runs.inbound`) and whose first words match a keyword
on its channel starts the journey for its sender: an unknown number becomes a
contact, and the text is the variable `trigger`. Publishing a new version
retires the old listening run (it becomes `active`, so the contacts in it
finish on the version they started) and opens one for the new version;
stopping the listening run turns the triggers off until the next publish.
"""

from __future__ import annotations

from sqlalchemy import select, update

from app.contacts import audiences
from app.engine.triggers import keywords_by_channel, matching_keyword
from app.extensions import db
from app.models import (
    FINAL_STATES,
    Contact,
    InboundMessage,
    Journey,
    JourneyVersion,
    Participation,
    Run,
    Step,
    User,
    participation_table,
    utcnow,
)
from app.models.bulk import insert_ignore
from app.runs import advancing
from app.runs.membership import active_contact_ids
from app.runs.runner import _lease, complete_runs


def listening_run(journey_id: int) -> Run | None:
    return db.session.scalar(select(Run).where(Run.journey_id == journey_id, Run.status == "listening").limit(1))


def sync(journey: Journey, version: JourneyVersion, *, arm: bool, user: User | None = None, dry_run: bool = False):
    """Make the journey listen with `version`'s triggers; returns the listening run or None.

    `arm` is an explicit publish: it opens a listening run even when none is open (after a stop).
    Starting an audience run (`arm=False`) only moves an open listening run to a newer version.
    """
    current = listening_run(journey.id)
    if current is not None and current.version_id == version.id:
        return current
    if current is None and not arm:
        return None
    if current is not None:
        current.status = "active"
    opened = None
    if keywords_by_channel(version.definition):
        opened = Run(
            journey_id=journey.id,
            version_id=version.id,
            status="listening",
            kind="trigger",
            total=0,
            dry_run=dry_run,
            created_by_id=getattr(user, "id", None),
        )
        db.session.add(opened)
    db.session.commit()
    if current is not None:
        complete_runs([current.id])
    return opened


def listening_keywords(exclude_journey_id: int | None = None) -> list[tuple[Run, Journey, dict]]:
    """(run, journey, keywords per channel) of every listening run, oldest first."""
    rows = db.session.execute(
        select(Run, Journey, JourneyVersion.definition)
        .join(Journey, Journey.id == Run.journey_id)
        .join(JourneyVersion, JourneyVersion.id == Run.version_id)
        .where(Run.status == "listening")
        .order_by(Run.id)
    ).all()
    return [
        (run, journey, keywords_by_channel(definition))
        for run, journey, definition in rows
        if journey.id != exclude_journey_id
    ]


def start_from_inbound(inbound: InboundMessage, contact_id: int | None) -> tuple[int | None, int | None]:
    """Start the journey a keyword in `inbound` triggers; (participation id or None, contact id)."""
    run, keyword = _triggered_run(inbound.body or "", inbound.channel)
    if run is None:
        return None, contact_id
    if contact_id is None:
        contact_id = audiences.upsert_contacts([{"phone": inbound.from_phone}])[0]
    elif not _may_start(contact_id, run):
        return None, contact_id
    participation_id = _join(run.id, contact_id, inbound, keyword)
    if participation_id is not None:
        advancing.advance([participation_id])
    return participation_id, contact_id


def _triggered_run(text: str, channel: str) -> tuple[Run | None, str | None]:
    for run, _journey, keywords in listening_keywords():
        keyword = matching_keyword(text, keywords.get(channel, ()))
        if keyword is not None:
            return run, keyword
    return None, None


def _may_start(contact_id: int, run: Run) -> bool:
    """Not opted out, not waiting for a reply in any run (a reply there comes first), and not active in
    another run of this journey (one run of a journey at a time, as for a start)."""
    contact = db.session.get(Contact, contact_id)
    if contact is None or contact.opted_out:
        return False
    waiting = db.session.scalar(
        select(Participation.id)
        .where(Participation.contact_id == contact_id, Participation.state == "waiting")
        .limit(1)
    )
    elsewhere = active_contact_ids(run.journey_id, other_than_run=run.id)
    busy = db.session.scalar(elsewhere.where(participation_table.c.contact_id == contact_id).limit(1))
    return waiting is None and busy is None


def _join(run_id: int, contact_id: int, inbound: InboundMessage, keyword: str) -> int | None:
    """Put the contact at the start of the listening run: a new participation, or its finished one again.

    A participation is one per run and contact; a contact who finished and texts the keyword again
    starts over in the same row, its node visit counts kept so message idempotency keys never repeat.
    """
    now = utcnow()
    start_state = {"variables": {"trigger": inbound.body or ""}}
    inserted = db.session.scalars(
        insert_ignore(participation_table, ["run_id", "contact_id"])
        .values(
            run_id=run_id,
            contact_id=contact_id,
            state="active",
            engine_state=start_state,
            wake_at=now + _lease(),
            lock_version=0,
            started_at=now,
            updated_at=now,
        )
        .returning(participation_table.c.id)
    ).all()
    if inserted:
        db.session.execute(update(Run).where(Run.id == run_id).values(total=Run.total + 1))
        participation_id = inserted[0]
    else:
        participation_id = _restart_finished(run_id, contact_id, start_state, now)
    if participation_id is not None:
        _record_trigger(participation_id, run_id, inbound, keyword, now)
    db.session.commit()
    return participation_id


def _restart_finished(run_id: int, contact_id: int, start_state: dict, now) -> int | None:
    row = db.session.execute(
        select(Participation.id, Participation.state, Participation.engine_state, Participation.lock_version).where(
            Participation.run_id == run_id, Participation.contact_id == contact_id
        )
    ).one()
    if row.state not in FINAL_STATES:
        return None
    visits = (row.engine_state or {}).get("visits") or {}
    restarted = db.session.execute(
        update(Participation)
        .where(Participation.id == row.id, Participation.lock_version == row.lock_version)
        .values(
            state="active",
            node_id=None,
            engine_state={**start_state, "visits": visits},
            error=None,
            wake_at=now + _lease(),
            lock_version=row.lock_version + 1,
            started_at=now,
            updated_at=now,
        )
    )
    return row.id if restarted.rowcount == 1 else None


def _record_trigger(participation_id: int, run_id: int, inbound: InboundMessage, keyword: str, now) -> None:
    db.session.add(
        Step(
            participation_id=participation_id,
            run_id=run_id,
            kind="reply",
            node_id=None,
            detail={
                "text": inbound.body or "",
                "payload": inbound.payload,
                "matched": True,
                "inbound_id": inbound.id,
                "trigger": keyword,
            },
            at=now,
        )
    )
