"""What the contact's page and `GET /api/contacts/<id>` show: its runs, audiences and one timeline.

The timeline reads the message log by number (`ix_message_to_phone`,
`ix_inbound_from_phone`), so it covers journey runs, campaigns and one-off
replies alike, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import Audience, AudienceContact, Contact, InboundMessage, Journey, Message, Participation, Run
from app.models.vocabulary import iso_z

TIMELINE_LIMIT = 200


@dataclass
class ContactRun:
    participation_id: int
    run_id: int
    run_status: str
    journey_id: int
    journey_name: str
    state: str
    node_id: str | None
    started_at: datetime
    updated_at: datetime

    def as_json(self) -> dict:
        return {
            "run_id": self.run_id,
            "participation_id": self.participation_id,
            "journey_id": self.journey_id,
            "journey": self.journey_name,
            "run_status": self.run_status,
            "state": self.state,
            "node": self.node_id,
            "started_at": iso_z(self.started_at),
            "updated_at": iso_z(self.updated_at),
        }


@dataclass
class TimelineEntry:
    direction: str  # "in" or "out"
    id: int
    body: str | None
    status: str
    at: datetime
    channel: str
    run_id: int | None = None
    participation_id: int | None = None
    campaign_id: int | None = None
    error: str | None = None
    content_sid: str | None = None
    media: list | None = None

    def as_json(self) -> dict:
        data = {"direction": self.direction, "body": self.body, "status": self.status, "at": iso_z(self.at)}
        data.update(
            id=self.id,
            channel=self.channel,
            run_id=self.run_id,
            campaign_id=self.campaign_id,
            error=self.error,
        )
        if self.media:
            data["media"] = self.media
        return data


def runs_of(contact: Contact) -> list[ContactRun]:
    """The contact's place in every run, newest run first."""
    rows = db.session.execute(
        select(
            Participation.id,
            Run.id,
            Run.status,
            Journey.id,
            Journey.name,
            Participation.state,
            Participation.node_id,
            Participation.started_at,
            Participation.updated_at,
        )
        .join(Run, Run.id == Participation.run_id)
        .join(Journey, Journey.id == Run.journey_id)
        .where(Participation.contact_id == contact.id)
        .order_by(Run.id.desc())
    ).all()
    return [ContactRun(*row) for row in rows]


def audiences_of(contact: Contact) -> list[Audience]:
    return list(
        db.session.scalars(
            select(Audience)
            .join(AudienceContact, AudienceContact.audience_id == Audience.id)
            .where(AudienceContact.contact_id == contact.id)
            .order_by(Audience.id.desc())
        )
    )


def timeline(contact: Contact, limit: int = TIMELINE_LIMIT) -> list[TimelineEntry]:
    """Every message to and from the contact's number, newest first (at most `limit`)."""
    out = db.session.execute(
        select(Message, Participation.run_id)
        .outerjoin(Participation, Participation.id == Message.participation_id)
        .where(Message.to_phone == contact.phone)
        .order_by(Message.id.desc())
        .limit(limit)
    ).all()
    inbound = db.session.execute(
        select(InboundMessage, Participation.run_id)
        .outerjoin(Participation, Participation.id == InboundMessage.participation_id)
        .where(InboundMessage.from_phone == contact.phone)
        .order_by(InboundMessage.id.desc())
        .limit(limit)
    ).all()
    entries = [_outbound_entry(message, run_id) for message, run_id in out]
    entries += [_inbound_entry(message, run_id) for message, run_id in inbound]
    entries.sort(key=lambda entry: (entry.at, entry.direction == "in", entry.id), reverse=True)
    return entries[:limit]


def _outbound_entry(message: Message, run_id: int | None) -> TimelineEntry:
    return TimelineEntry(
        direction="out",
        id=message.id,
        body=message.body,
        status=message.status,
        at=message.created_at,
        channel=message.channel,
        run_id=run_id,
        participation_id=message.participation_id,
        campaign_id=message.campaign_id,
        error=message.error_message,
        content_sid=message.content_sid,
    )


def _inbound_entry(message: InboundMessage, run_id: int | None) -> TimelineEntry:
    return TimelineEntry(
        direction="in",
        id=message.id,
        body=message.body,
        status=message.outcome,
        at=message.received_at,
        channel=message.channel,
        run_id=run_id,
        participation_id=message.participation_id,
        media=inbound_media(message),
    )


def inbound_media(message: InboundMessage) -> list[dict]:
    """The web links among an inbound message's media ({url, content_type}); empty until the `media` column exists."""
    media = getattr(message, "media", None)
    if not isinstance(media, list):
        return []
    return [
        item
        for item in media
        if isinstance(item, dict) and str(item.get("url") or "").lower().startswith(("https://", "http://"))
    ]
