"""The inbox: every inbound message, newest first, with what became of it, filtered and paginated.

Pages are keyset pages on the id (`before`/`after`), so the newest page stays
cheap however long the inbox grows; a chosen outcome reads `ix_inbound_outcome_id`.
A search that looks like a phone number matches the sender's number by
prefix; any other search matches the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, or_, select

from app.contacts import profile
from app.extensions import db
from app.models import Contact, InboundMessage, Participation
from app.models.vocabulary import INBOUND_OUTCOMES, RECEIVED

PER_PAGE = 50
PER_PAGE_MAX = 500
_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-]{3,}$")


@dataclass(frozen=True)
class InboxFilter:
    outcome: str | None = None
    search: str | None = None

    @classmethod
    def from_args(cls, args) -> InboxFilter:
        outcome = args.get("outcome") or None
        if outcome not in (*INBOUND_OUTCOMES, RECEIVED):
            outcome = None
        return cls(outcome=outcome, search=(args.get("q") or "").strip()[:100] or None)

    def as_args(self) -> dict:
        return {name: value for name, value in (("outcome", self.outcome), ("q", self.search)) if value}


@dataclass
class InboxRow:
    message: InboundMessage
    contact: Contact | None
    run_id: int | None
    media: list[dict]


@dataclass
class InboxPage:
    rows: list[InboxRow]
    newer: int | None  # `after` for the previous (newer) page, None on the newest
    older: int | None  # `before` for the next (older) page, None on the last


def _criteria(filters: InboxFilter) -> list:
    criteria = []
    if filters.outcome:
        criteria.append(InboundMessage.outcome == filters.outcome)
    if filters.search:
        if _PHONE_LIKE.match(filters.search):
            digits = "".join(char for char in filters.search if char.isdigit())
            criteria.append(
                or_(InboundMessage.from_phone.like(f"+{digits}%"), InboundMessage.from_phone.like(f"%{digits}"))
            )
        else:
            escaped = filters.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            criteria.append(InboundMessage.body.ilike(f"%{escaped}%", escape="\\"))
    return criteria


def page(filters: InboxFilter, before: int | None = None, after: int | None = None, per_page=PER_PAGE) -> InboxPage:
    """One page of the inbox, newest first."""
    criteria = _criteria(filters)
    statement = select(InboundMessage).where(*criteria)
    if after is not None:
        found = db.session.scalars(
            statement.where(InboundMessage.id > after).order_by(InboundMessage.id).limit(per_page + 1)
        ).all()
        has_newer, messages = len(found) > per_page, list(reversed(found[:per_page]))
        has_older = True
    else:
        if before is not None:
            statement = statement.where(InboundMessage.id < before)
        found = db.session.scalars(statement.order_by(InboundMessage.id.desc()).limit(per_page + 1)).all()
        has_older, messages = len(found) > per_page, list(found[:per_page])
        has_newer = before is not None
    rows = with_links(messages)
    return InboxPage(
        rows=rows,
        newer=messages[0].id if messages and has_newer else None,
        older=messages[-1].id if messages and has_older else None,
    )


def count(filters: InboxFilter) -> int:
    return db.session.scalar(select(func.count()).select_from(InboundMessage).where(*_criteria(filters)))


def with_links(messages: list[InboundMessage]) -> list[InboxRow]:
    contact_ids = {message.contact_id for message in messages if message.contact_id}
    contacts = (
        {contact.id: contact for contact in db.session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
        if contact_ids
        else {}
    )
    participation_ids = {message.participation_id for message in messages if message.participation_id}
    runs = (
        dict(
            db.session.execute(
                select(Participation.id, Participation.run_id).where(Participation.id.in_(participation_ids))
            ).all()
        )
        if participation_ids
        else {}
    )
    return [
        InboxRow(
            message,
            contacts.get(message.contact_id),
            runs.get(message.participation_id),
            profile.inbound_media(message),
        )
        for message in messages
    ]
