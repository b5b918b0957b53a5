"""Reply as a contact: an operator answers for a waiting contact (dry runs, tests on a colleague's phone).

The reply is stored as an inbound message like Twilio's webhook stores one, with a synthetic sid and
the operator who typed it, and handled by the same `app.runs.inbound.handle_received`; if handling
fails midway, the sweeper finishes it as for any inbound message.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select

from app.extensions import db
from app.models import InboundMessage, Participation, Run, User, message_table, utcnow
from app.models.vocabulary import RECEIVED
from app.runs import inbound
from app.runs.runner import journey_for_version

OPERATOR_SID_PREFIX = "OP"


def reply_as_contact(participation: Participation, text: str, payload: str | None, user_id: int) -> InboundMessage:
    """Store the operator's reply as the contact's inbound message and route it, this participation first."""
    row = InboundMessage(
        sid=f"{OPERATOR_SID_PREFIX}{secrets.token_hex(16)}",
        from_phone=participation.contact.phone,
        channel=_channel_of(participation.id, participation.run.version_id),
        body=text,
        payload=(payload or "")[:256] or None,
        outcome=RECEIVED,
        received_at=utcnow(),
        entered_by_id=user_id,
    )
    db.session.add(row)
    db.session.commit()
    inbound_id = row.id
    inbound.handle_received(inbound_id, prefer=participation.id)
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


def operator_replies(participation_id: int) -> dict[int, str]:
    """Inbound ids an operator typed for this participation, with the operator's email."""
    rows = db.session.execute(
        select(InboundMessage.id, User.email)
        .join(User, User.id == InboundMessage.entered_by_id)
        .where(InboundMessage.participation_id == participation_id)
    )
    return {row.id: row.email for row in rows}


def _channel_of(participation_id: int, version_id: int) -> str:
    """The channel the participation talks on: its last message's, else the journey's."""
    last_channel = db.session.scalar(
        select(message_table.c.channel)
        .where(message_table.c.participation_id == participation_id)
        .order_by(message_table.c.id.desc())
        .limit(1)
    )
    return last_channel or journey_for_version(version_id).channel
