"""Handling a stored inbound message: STOP/START keywords, else a reply routed to the contact's waiting participation.

Every path is exactly-once: the row leaves `received` in the same
transaction as its effect (a compare-and-set on the outcome), and a reply is
claimed for its participation in the transaction that steps it. So a
handling that failed midway, or two at once (the webhook's and the
sweeper's), never apply a message twice; what was left `received` is handled
by the sweeper (`handle_stale_received`).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from app.contacts import optout, phones
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
from app.models.vocabulary import (
    MATCHED,
    NOT_WAITING,
    OPTED_IN,
    OPTED_OUT,
    RECEIVED,
    TRIGGERED,
    UNKNOWN_CONTACT,
    UNMATCHED,
)
from app.runs import listening
from app.runs.lifecycle import opt_out_contact
from app.runs.runner import _step, journey_for_version

# Whole-message keywords (case, spaces and punctuation ignored), as Twilio's own opt-out handling,
# plus Portuguese PARAR/SAIR for opting out.
OPT_OUT_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "PARAR", "SAIR"}
OPT_IN_WORDS = {"START", "UNSTOP"}
# A message still `received` this long after it arrived was not handled (an error, a crash): the sweeper does it.
STALE_AFTER = timedelta(seconds=10)
STALE_BATCH = 200


def handle_received(inbound_id: int, prefer: int | None = None) -> str | None:
    """Handle a stored inbound message once: opt out or in on a keyword, else route it as a reply; return its outcome.

    `prefer` (an operator replying as the contact from a run's page) is tried first among the contact's waiting
    participations; the sweeper, retrying later, routes as for any reply.
    """
    row = db.session.get(InboundMessage, inbound_id)
    if row is None or row.outcome != RECEIVED:
        return row.outcome if row is not None else None
    keyword = re.sub(r"[\W_]+", "", row.body or "").upper()
    if keyword in OPT_OUT_WORDS or keyword in OPT_IN_WORDS:
        return _apply_keyword(row, OPTED_OUT if keyword in OPT_OUT_WORDS else OPTED_IN)
    return handle_inbound(inbound_id, prefer)


def handle_stale_received(now: datetime | None = None, limit: int = STALE_BATCH) -> int:
    """Handle the inbound messages left `received` (their handling failed or was cut short); return how many.

    Called by the workers' sweeper. A message that fails again is logged and tried at the next sweep.
    """
    now = now or utcnow()
    stale = list(
        db.session.scalars(
            select(InboundMessage.id)
            .where(InboundMessage.outcome == RECEIVED, InboundMessage.received_at < now - STALE_AFTER)
            .order_by(InboundMessage.id)
            .limit(limit)
        )
    )
    db.session.commit()
    handled = 0
    for inbound_id in stale:
        try:
            handle_received(inbound_id)
            handled += 1
        except Exception:
            db.session.rollback()
            current_app.logger.exception("inbound message %d could not be handled; trying again later", inbound_id)
    return handled


def _apply_keyword(row: InboundMessage, outcome: str) -> str:
    """STOP or START: the contact's opt-out flag, the row's outcome and (STOP) its participations, in one commit."""
    inbound_id = row.id
    if outcome == OPTED_OUT:
        contact_id = optout.opt_out(row.from_phone, commit=False)
    else:
        contact_id = optout.opt_in(row.from_phone, commit=False)
    if not _set_outcome(inbound_id, outcome, contact_id, None):
        db.session.rollback()
        return db.session.get(InboundMessage, inbound_id).outcome
    if outcome == OPTED_OUT:
        opt_out_contact(contact_id)  # ends its participations and commits it all
    db.session.commit()
    return outcome


def _set_outcome(inbound_id: int, outcome: str, contact_id: int | None, participation_id: int | None) -> bool:
    """Move the row out of `received` (compare-and-set): False if it had already left it."""
    return bool(
        db.session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == inbound_id, InboundMessage.outcome == RECEIVED)
            .values(outcome=outcome, contact_id=contact_id, participation_id=participation_id)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def handle_inbound(inbound_id: int, prefer: int | None = None) -> str | None:
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
    if inbound is None or inbound.outcome != RECEIVED:
        return inbound.outcome if inbound is not None else None
    if inbound.participation_id is not None:  # stepped already, but its outcome was never written
        return _finish_claimed(inbound)
    contact_id = inbound.contact_id or db.session.scalar(
        select(Contact.id).where(Contact.phone == phones.bare_phone(inbound.from_phone))
    )
    outcome, participation_id = UNKNOWN_CONTACT, None
    if contact_id is not None:
        outcome, participation_id = NOT_WAITING, _latest_participation(contact_id)
        reply = events.Reply(inbound.body or "", inbound.payload)
        candidates = _waiting_participations(contact_id, inbound.channel)
        if prefer in candidates:
            candidates.insert(0, candidates.pop(candidates.index(prefer)))
        for candidate in candidates:
            results = _step([candidate], lambda row, state: _claim_reply(inbound_id, row.id, state, reply))
            if candidate in results:
                moved = any(entry.get("kind") == "edge" for entry in results[candidate].trail)
                outcome, participation_id = (MATCHED if moved else UNMATCHED), candidate
                break
    if outcome in (NOT_WAITING, UNKNOWN_CONTACT):
        started, contact_id = listening.start_from_inbound(inbound, contact_id)
        if started is not None:
            outcome, participation_id = TRIGGERED, started
    if outcome == NOT_WAITING and participation_id is not None:
        _record_unrouted_reply(participation_id, inbound)
    if outcome in (MATCHED, UNMATCHED):
        _set_claimed_outcome(inbound_id, outcome, contact_id)
    elif not _set_outcome(inbound_id, outcome, contact_id, participation_id):
        db.session.rollback()  # handled meanwhile by someone else: their outcome stands
        return db.session.get(InboundMessage, inbound_id).outcome
    db.session.commit()
    return outcome


def _claim_reply(inbound_id: int, participation_id: int, state, reply: events.Reply):
    """The reply event for a waiting participation, once: the row is claimed in the transaction that steps it."""
    if state.status != "waiting":
        return None
    inbound = InboundMessage.__table__.c
    claimed = db.session.execute(
        update(InboundMessage.__table__)
        .where(inbound.id == inbound_id, inbound.outcome == RECEIVED, inbound.participation_id.is_(None))
        .values(participation_id=participation_id)
    ).rowcount
    return (reply, {"reply": {"inbound_id": inbound_id}}) if claimed else None


def _set_claimed_outcome(inbound_id: int, outcome: str, contact_id: int | None) -> None:
    inbound = InboundMessage.__table__.c
    db.session.execute(
        update(InboundMessage.__table__)
        .where(inbound.id == inbound_id, inbound.outcome == RECEIVED)
        .values(outcome=outcome, contact_id=contact_id)
    )


def _finish_claimed(inbound: InboundMessage) -> str:
    """Write the outcome of a reply that stepped its participation: `matched` if an edge followed its reply step."""
    s = step_table.c
    steps = db.session.execute(
        select(s.id, s.kind, s.at, s.detail)
        .where(s.participation_id == inbound.participation_id, s.kind.in_(("reply", "edge")))
        .order_by(s.id)
    ).all()
    reply = next((row for row in steps if (row.detail or {}).get("inbound_id") == inbound.id), None)
    moved = reply is not None and any(row.kind == "edge" and row.id > reply.id and row.at == reply.at for row in steps)
    outcome = MATCHED if moved else UNMATCHED
    contact_id = db.session.scalar(
        select(participation_table.c.contact_id).where(participation_table.c.id == inbound.participation_id)
    )
    _set_claimed_outcome(inbound.id, outcome, contact_id)
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
