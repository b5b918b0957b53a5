"""The run page's contacts table (filters, keyset pages) and one contact's timeline."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, literal_column, or_, select

from app.extensions import db
from app.models import Contact, Message, MessageEvent, Participation, Run, Step, utcnow
from app.models.vocabulary import FAILED_STATUSES
from app.runs.read_models.positions import overdue_conditions
from app.runs.read_models.tally import NO_CODE

CONTACTS_PER_PAGE = 50
TIMELINE_LIMIT = 1000


@dataclass
class ContactFilter:
    """The contacts table's filters; every one optional."""

    state: str | None = None
    node: str | None = None
    search: str | None = None
    error: str | None = None  # a Twilio error code, or "none": contacts with a message that failed so
    overdue: bool = False

    def as_args(self) -> dict:
        args = {
            "state": self.state,
            "node": self.node,
            "q": self.search,
            "error": self.error,
            "overdue": "1" if self.overdue else None,
        }
        return {key: value for key, value in args.items() if value}


@dataclass
class ContactsPage:
    rows: list
    count: int
    first_id: int | None
    last_id: int | None
    has_before: bool
    has_after: bool


def contacts_table(
    run: Run,
    filters: ContactFilter,
    after: int | None = None,
    before: int | None = None,
    per_page: int = CONTACTS_PER_PAGE,
    now: datetime | None = None,
    total: int | None = None,
) -> ContactsPage:
    """One page of the run's contacts, in the order they joined, keyset-paginated on the participation id.

    Never loads more than a page of rows: `after`/`before` are the last/first id of the neighbouring page.
    `total`, the run's number of contacts if the caller knows it, saves counting them when nothing is
    filtered.
    """
    p = Participation
    filtering = _filter_criteria(filters, now or utcnow())
    criteria = [p.run_id == run.id, *filtering]
    counted = select(func.count()).select_from(p).where(*criteria)
    known = total if total is not None and not filtering else None
    # The count rides along in the page's statement, so a search scans the contacts once, not twice.
    count_column = literal_column(str(known)) if known is not None else counted.scalar_subquery()
    query = (
        select(
            p.id,
            p.contact_id,
            Contact.phone,
            Contact.name,
            p.state,
            p.node_id,
            p.wake_at,
            p.error,
            p.updated_at,
            count_column.label("total"),
        )
        .join(Contact, Contact.id == p.contact_id)
        .where(*criteria)
    )
    if before is not None:
        rows = db.session.execute(query.where(p.id < before).order_by(p.id.desc()).limit(per_page + 1)).all()
        has_more, rows = len(rows) > per_page, list(reversed(rows[:per_page]))
        has_before, has_after = has_more, True
    else:
        if after is not None:
            query = query.where(p.id > after)
        rows = db.session.execute(query.order_by(p.id).limit(per_page + 1)).all()
        has_after, rows = len(rows) > per_page, rows[:per_page]
        has_before = after is not None
    count = known if known is not None else rows[0].total if rows else db.session.scalar(counted)
    return ContactsPage(
        rows=rows,
        count=count,
        first_id=rows[0].id if rows else None,
        last_id=rows[-1].id if rows else None,
        has_before=has_before and bool(rows),
        has_after=has_after,
    )


def _filter_criteria(filters: ContactFilter, now: datetime) -> list:
    p = Participation
    criteria = []
    if filters.state:
        criteria.append(p.state == filters.state)
    if filters.node:
        criteria.append(p.node_id == filters.node)
    if filters.overdue:
        criteria.append(or_(*overdue_conditions(now)))
    if filters.error:
        code = None if filters.error == NO_CODE else _as_int(filters.error)
        # Failed messages are few: find them by status (indexed), then their participations.
        failed = select(Message.participation_id).where(
            Message.status.in_(FAILED_STATUSES),
            Message.error_code.is_(None) if code is None else Message.error_code == code,
        )
        criteria.append(p.id.in_(failed))
    if filters.search:
        text = filters.search.strip()
        digits = re.sub(r"\D", "", text)
        matches = [func.lower(Contact.name).contains(text.lower(), autoescape=True)]
        if len(digits) >= 3 and re.fullmatch(r"[\d\s()+.\-]+", text):
            matches.append(Contact.phone.contains(digits, autoescape=True))
        # Matching contacts first (one scan), then their participations: a rare name would otherwise
        # make the planner walk the whole run in id order looking for it.
        found = select(Contact.id).where(or_(*matches)).cte("found").prefix_with("MATERIALIZED")
        criteria.append(p.contact_id.in_(select(found.c.id)))
    return criteria


def _as_int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1  # no Twilio code is negative: matches nothing


@dataclass
class TimelineEntry:
    at: datetime
    kind: str
    node_id: str | None
    detail: dict
    message: Message | None = None
    events: list = field(default_factory=list)
    reply: str | None = None  # for an edge: the reply that chose it


def contact_timeline(participation: Participation) -> list[TimelineEntry]:
    """The contact's path through the run, oldest first: nodes entered, edges taken with the reply that
    chose them, each message with its status history, API calls, timers and errors."""
    steps = list(
        db.session.scalars(
            select(Step).where(Step.participation_id == participation.id).order_by(Step.id).limit(TIMELINE_LIMIT)
        )
    )
    messages = {
        message.id: message
        for message in db.session.scalars(select(Message).where(Message.participation_id == participation.id))
    }
    events: dict[int, list] = {}
    if messages:
        for event in db.session.scalars(
            select(MessageEvent).where(MessageEvent.message_id.in_(list(messages))).order_by(MessageEvent.id)
        ):
            events.setdefault(event.message_id, []).append(event)
    entries, last_reply = [], None
    for step in steps:
        detail = step.detail or {}
        entry = TimelineEntry(at=step.at, kind=step.kind, node_id=step.node_id, detail=detail)
        if step.kind == "reply":
            last_reply = detail.get("text")
        elif step.kind == "edge":
            entry.reply, last_reply = last_reply, None
        elif step.kind == "message":
            entry.message = messages.get(detail.get("message_id"))
            entry.events = events.get(detail.get("message_id"), [])
        entries.append(entry)
    return entries
