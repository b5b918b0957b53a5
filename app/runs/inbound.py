"""Routing an inbound reply to the contact's waiting participation."""

from __future__ import annotations

from sqlalchemy import select, update

from app.contacts import phones
from app.engine import events
from app.extensions import db
from app.models import (
    Contact,
    InboundMessage,
    JourneyVersion,
    Run,
    message_table,
    participation_table,
    step_table,
    utcnow,
)
from app.runs import listening
from app.runs.runner import _step, journey_for_version


def handle_inbound(inbound_id: int) -> str | None:
    """Route a stored inbound message to the contact's waiting participation; return its outcome.

    Outcomes: `matched` (an edge was taken, `fallback` included), `unmatched`
    (still waiting: nothing matched and the wait has no fallback), `not_waiting`,
    `unknown_contact`, `triggered` (no contact was waiting and the text started a journey by keyword,
    `app.runs.listening`). Among several waiting participations, the one of the
    most recently started run whose channel is the message's wins. The reply
    is kept on the inbound row either way, and on the step history of the
    participation it reached.
    """
    inbound = db.session.get(InboundMessage, inbound_id)
    if inbound is None or inbound.outcome != "received":
        return inbound.outcome if inbound is not None else None
    contact_id = inbound.contact_id or db.session.scalar(
        select(Contact.id).where(Contact.phone == phones.bare_phone(inbound.from_phone))
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
    if outcome in ("not_waiting", "unknown_contact"):
        started, contact_id = listening.start_from_inbound(inbound, contact_id)
        if started is not None:
            outcome, participation_id = "triggered", started
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
