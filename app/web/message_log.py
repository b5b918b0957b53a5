"""The message log both the outbox and a campaign's page show: filters, keyset pages, its fragment.

A helper of the web layer (no blueprint), so neither page's blueprint imports the other's.
"""

import re
from dataclasses import dataclass

from flask import request, url_for

from app.extensions import db
from app.models import Message, Participation
from app.models.vocabulary import MESSAGE_STATUSES
from app.sending.channels import CHANNELS
from app.web import htmx

PAGE_SIZE = 50
STATUSES = MESSAGE_STATUSES
LOG_TARGET = "message-log"  # the id of the fragment's root: an htmx request aiming at it gets the fragment only


@dataclass
class LogPage:
    """One page of the message log; `newer`/`older` are the id cursors of the neighbour pages (or None)."""

    messages: list[Message]
    filters: dict
    newer: int | None
    older: int | None
    endpoint: str
    endpoint_args: dict
    cursor: dict
    searchable: bool

    def url(self, **cursor) -> str:
        """This log with its filters, at `cursor` (before=id / after=id; none = the newest page)."""
        filters = {key: value for key, value in self.filters.items() if value}
        return url_for(self.endpoint, **self.endpoint_args, **filters, **cursor)

    def current_url(self) -> str:
        return self.url(**self.cursor)


def _cursor(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdecimal() else None


def log_page(endpoint: str, endpoint_args: dict, *conditions, searchable: bool = True) -> LogPage:
    """The page of messages matching `conditions` and the request's filters (status, channel, q, before/after).

    Keyset pagination on the id: new messages arriving while sending never shift the pages.
    """
    filters = {
        "status": request.args.get("status", "") if request.args.get("status") in STATUSES else "",
        "channel": request.args.get("channel", "") if searchable and request.args.get("channel") in CHANNELS else "",
        "q": request.args.get("q", "").strip() if searchable else "",
        "run": request.args.get("run", "") if searchable and request.args.get("run", "").isdecimal() else "",
    }
    query = db.select(Message).where(*conditions)
    if filters["status"]:
        query = query.where(Message.status == filters["status"])
    if filters["channel"]:
        query = query.where(Message.channel == filters["channel"])
    if filters["run"]:
        in_run = db.select(Participation.id).where(Participation.run_id == int(filters["run"]))
        query = query.where(Message.participation_id.in_(in_run))
    digits = re.sub(r"\D", "", filters["q"])
    if filters["q"]:
        query = query.where(Message.to_phone.contains(digits or filters["q"], autoescape=True))
    before, after = _cursor("before"), _cursor("after")
    if after is not None:
        rows = db.session.scalars(query.where(Message.id > after).order_by(Message.id).limit(PAGE_SIZE + 1)).all()
        more_newer = len(rows) > PAGE_SIZE
        messages = list(reversed(rows[:PAGE_SIZE]))
        return LogPage(
            messages,
            filters,
            messages[0].id if more_newer else None,
            messages[-1].id if messages else None,
            endpoint,
            endpoint_args,
            {"after": after},
            searchable,
        )
    if before is not None:
        query = query.where(Message.id < before)
    rows = db.session.scalars(query.order_by(Message.id.desc()).limit(PAGE_SIZE + 1)).all()
    messages = rows[:PAGE_SIZE]
    newer = messages[0].id if before is not None and messages else None
    older = messages[-1].id if len(rows) > PAGE_SIZE else None
    cursor = {"before": before} if before is not None else {}
    return LogPage(messages, filters, newer, older, endpoint, endpoint_args, cursor, searchable)


def wants_log_fragment() -> bool:
    """An htmx request aimed at the log itself (its filters, its pages) gets the fragment only."""
    return htmx.wants_fragment(LOG_TARGET)
