"""Inbound messages: stored once, STOP/START handled, then routed to the contact's waiting participation.

Twilio's signed webhook and an operator replying as a contact (dry runs, tests
on a colleague's phone) take the same path, `receive`; the operator's reply
only carries a synthetic sid and who typed it.
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select, update

from app.contacts import optout, phones
from app.engine import events
from app.extensions import db
from app.models import (
    Contact,
    InboundMessage,
    JourneyVersion,
    Participation,
    Run,
    User,
    bulk,
    message_table,
    participation_table,
    step_table,
    utcnow,
)
from app.runs import lifecycle, listening
from app.runs.runner import _step, journey_for_version

# Whole-message keywords (case, spaces and punctuation ignored), as Twilio's own opt-out handling,
# plus Portuguese PARAR/SAIR for opting out.
OPT_OUT_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "PARAR", "SAIR"}
OPT_IN_WORDS = {"START", "UNSTOP"}
OPERATOR_SID_PREFIX = "OP"


def receive(
    sid: str,
    phone: str,
    channel: str,
    body: str,
    payload: str | None = None,
    to_address: str | None = None,
    *,
    entered_by_id: int | None = None,
    participation_id: int | None = None,
) -> int | None:
    """Store an inbound message once per sid, handle STOP/START, route it; its id, or None for a repeat.

    `participation_id` (an operator replying from a run's page) is tried
    first among the contact's waiting participations.
    """
    inbound_id = _store_once(sid, phone, channel, body, payload, to_address, entered_by_id, participation_id)
    if inbound_id is None:
        return None
    row = db.session.get(InboundMessage, inbound_id)
    keyword = re.sub(r"[\W_]+", "", row.body).upper()
    if keyword in OPT_OUT_WORDS:
        row.contact_id, row.outcome = optout.opt_out(phone, commit=False), "opted_out"
    elif keyword in OPT_IN_WORDS:
        row.contact_id, row.outcome = optout.opt_in(phone, commit=False), "opted_in"
    else:
        row.contact_id = db.session.scalar(select(Contact.id).where(Contact.phone == phone))
    db.session.commit()
    if row.outcome == "opted_out":
        lifecycle.opt_out_contact(row.contact_id)
    elif row.outcome == "received":
        handle_inbound(inbound_id)
    return inbound_id


def _store_once(sid, phone, channel, body, payload, to_address, entered_by_id, participation_id) -> int | None:
    """Insert the inbound row; None when its sid was already stored (the unique key decides)."""
    insert = bulk.insert_ignore(InboundMessage.__table__, ["sid"]).values(
        sid=sid,
        from_phone=phone,
        to_address=to_address or None,
        channel=channel,
        body=body or "",
        payload=(payload or "")[:256] or None,
        outcome="received",
        received_at=utcnow(),
        entered_by_id=entered_by_id,
        participation_id=participation_id,
    )
    return db.session.execute(insert.returning(InboundMessage.__table__.c.id)).scalar()


def reply_as_contact(participation: Participation, text: str, payload: str | None, user_id: int) -> InboundMessage:
    """An operator answers for the contact of `participation`: a synthetic inbound message, routed as Twilio's."""
    contact = participation.contact
    channel = _channel_of(participation.id, participation.run.version_id)
    sid = f"{OPERATOR_SID_PREFIX}{secrets.token_hex(16)}"
    inbound_id = receive(
        sid,
        contact.phone,
        channel,
        text,
        payload,
        entered_by_id=user_id,
        participation_id=participation.id,
    )
    return db.session.get(InboundMessage, inbound_id)


def reply_choices(participation: Participation) -> list[dict]:
    """What the node the contact waits at reacts to: one button per keyword edge (its first word) and payload."""
    if participation.state != "waiting":
        return []
    choices = []
    for edge in participation.run.version.definition.get("edges", []):
        when = edge.get("when") if isinstance(edge, dict) else None
        if edge.get("from") != participation.node_id or not isinstance(when, dict):
            continue
        if when.get("keywords"):
            choices.append({"text": str(when["keywords"][0]), "payload": "", "to": edge.get("to")})
        elif when.get("payload"):
            choices.append({"text": str(when["payload"]), "payload": str(when["payload"]), "to": edge.get("to")})
    return choices


def waiting_for_reply(contact_ids) -> dict[int, Participation]:
    """Each contact's waiting participation in its most recently started run (what an operator answers for)."""
    if not contact_ids:
        return {}
    rows = db.session.scalars(
        select(Participation)
        .join(Run, Run.id == Participation.run_id)
        .where(Participation.contact_id.in_(set(contact_ids)), Participation.state == "waiting")
        .order_by(Run.created_at.desc(), Run.id.desc())
    )
    found: dict[int, Participation] = {}
    for participation in rows:
        found.setdefault(participation.contact_id, participation)
    return found


def _channel_of(participation_id: int, version_id: int) -> str:
    """The channel the participation talks on: its last message's, else the journey's."""
    last_channel = db.session.scalar(
        select(message_table.c.channel)
        .where(message_table.c.participation_id == participation_id)
        .order_by(message_table.c.id.desc())
        .limit(1)
    )
    return last_channel or journey_for_version(version_id).channel


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
    chosen = inbound.participation_id
    contact_id = inbound.contact_id or db.session.scalar(
        select(Contact.id).where(Contact.phone == phones.bare_phone(inbound.from_phone))
    )
    outcome, participation_id = "unknown_contact", None
    if contact_id is not None:
        outcome, participation_id = "not_waiting", _latest_participation(contact_id)
        candidates = _waiting_participations(contact_id, inbound.channel)
        if chosen in candidates:
            candidates.remove(chosen)
            candidates.insert(0, chosen)
        for candidate in candidates:
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


def operator_replies(participation_id: int) -> dict[int, str]:
    """Inbound ids an operator typed for this participation, with the operator's email."""
    rows = db.session.execute(
        select(InboundMessage.id, User.email)
        .join(User, User.id == InboundMessage.entered_by_id)
        .where(InboundMessage.participation_id == participation_id)
    )
    return {row.id: row.email for row in rows}
