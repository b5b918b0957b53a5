"""The inbox page: every inbound message with what became of it, live.

The page polls a small fragment every 2 s while its tab is visible and it
shows the newest page: the answer is 204 (nothing swapped) unless newer
messages arrived, which it adds on top; a row still being handled polls
itself until it has its outcome.
"""

from flask import Blueprint, abort, render_template, request

from app.contacts import inbox
from app.extensions import db
from app.models import InboundMessage
from app.models.vocabulary import INBOUND_OUTCOMES, RECEIVED
from app.runs import operator_replies

bp = Blueprint("inbox", __name__, url_prefix="/inbox")


@bp.get("/")
def index():
    filters = inbox.InboxFilter.from_args(request.args)
    found = inbox.page(filters, before=request.args.get("before", type=int), after=request.args.get("after", type=int))
    return render_template(
        "inbox/index.html",
        filters=filters,
        found=found,
        total=inbox.count(filters),
        outcomes=INBOUND_OUTCOMES,
        live=found.newer is None,
        newest=found.rows[0].message.id if found.rows else 0,
        reply_as=reply_targets(found.rows),
    )


@bp.get("/_partials/newer")
def newer():
    """htmx: rows newer than `after` (and a poller that asks from the newest), or 204 when there are none."""
    filters = inbox.InboxFilter.from_args(request.args)
    after = request.args.get("after", 0, type=int)
    found = inbox.page(filters, after=after, per_page=inbox.PER_PAGE)
    if not found.rows:
        return "", 204
    return render_template(
        "inbox/_partials/newer.html",
        filters=filters,
        rows=found.rows,
        newest=found.rows[0].message.id,
        total=inbox.count(filters),
        reply_as=reply_targets(found.rows),
    )


@bp.get("/_partials/rows/<int:inbound_id>")
def row(inbound_id: int):
    """htmx: one row, polled while its message is still being handled."""
    message = db.session.get(InboundMessage, inbound_id)
    if message is None:
        abort(404)
    if message.outcome == RECEIVED and request.args.get("seen") == RECEIVED:
        return "", 204
    rows = inbox.with_links([message])
    return render_template("inbox/_partials/row.html", row=rows[0], reply_as=reply_targets(rows))


def reply_targets(rows: list[inbox.InboxRow]) -> dict[int, dict]:
    """For each contact on the page that is waiting in a run: its participation and the answers it expects."""
    waiting = operator_replies.waiting_for_reply(
        [row.contact.id for row in rows if row.contact and not row.contact.erased_at]
    )
    return {
        contact_id: {"participation": participation, "choices": operator_replies.reply_choices(participation)}
        for contact_id, participation in waiting.items()
    }
