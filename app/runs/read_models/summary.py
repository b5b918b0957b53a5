"""The JSON API's read models: a run's summary (`GET /api/runs/<id>`) and its contacts page by page
(`GET /api/runs/<id>/contacts`). Contacts per state and node come from `positions`, node visits from
the history `tally`, as on the run page."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.journeys.versions import journey_for_version
from app.models import Contact, Message, Participation, Run, utcnow
from app.models.vocabulary import DELIVERED_STATUSES, FAILED_STATUSES, UNSENT, iso_z
from app.runs.read_models.positions import positions
from app.runs.read_models.tally import run_tally

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000


def run_summary(run: Run) -> dict:
    """The run answer of docs/api.md: id, journey, status, total, states, nodes, messages (plus version)."""
    states, nodes = node_counts(run)
    return {
        "id": run.id,
        "journey_id": run.journey_id,
        "version": run.version.number,
        "status": run.status,
        "total": run.total,
        "already_active": run.already_active,
        "created_at": iso_z(run.created_at),
        "finished_at": iso_z(run.finished_at),
        "states": states,
        "nodes": nodes,
        "messages": message_counts(run.id),
    }


def node_counts(run: Run) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Contacts per state, and per node: `visits` (entries, from the step history), `here` (contacts
    there, not finished) and `ended` (contacts that finished there)."""
    journey = journey_for_version(run.version_id)
    states, nodes = positions(run.id, journey)
    tally, _rate = run_tally(run, journey, utcnow())
    for node_id, number in tally.visits.items():
        if node_id in nodes:
            nodes[node_id]["visits"] = number
    return states, nodes


def message_counts(run_id: int) -> dict[str, int]:
    """Cumulative, as docs/api.md defines them: `sent` = accepted by Twilio (has a sid) including those later
    delivered, read or failed; `delivered` = delivered or read; `failed` = failed or undelivered at any
    stage; `queued` = not yet accepted. `canceled` (never sent: run stopped, contact opted out) is extra."""
    counts = {"queued": 0, "sent": 0, "delivered": 0, "failed": 0, "canceled": 0}
    rows = db.session.execute(
        select(Message.status, func.count(), func.count(Message.sid))
        .where(Message.run_id == run_id)
        .group_by(Message.status)
    )
    for status, number, accepted in rows:
        counts["sent"] += accepted
        if status in UNSENT:
            counts["queued"] += number
        elif status in DELIVERED_STATUSES:
            counts["delivered"] += number
        elif status in FAILED_STATUSES:
            counts["failed"] += number
        elif status == "canceled":
            counts["canceled"] += number
    return counts


def contacts_page(run: Run, page: int = 1, per_page: int = DEFAULT_PER_PAGE) -> dict:
    """One page of the run's contacts (in the order they joined), each with its messages in order.

    `per_page` is capped at `MAX_PER_PAGE`; pages start at 1.
    """
    page, per_page = max(1, page), min(max(1, per_page), MAX_PER_PAGE)
    p = Participation
    rows = db.session.execute(
        select(
            p.id,
            p.contact_id,
            Contact.phone,
            Contact.name,
            p.state,
            p.node_id,
            p.engine_state,
            p.error,
            p.wake_at,
            p.started_at,
            p.updated_at,
        )
        .join(Contact, Contact.id == p.contact_id)
        .where(p.run_id == run.id)
        .order_by(p.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    messages: dict[int, list[dict]] = {row.id: [] for row in rows}
    if rows:
        for message in db.session.scalars(
            select(Message).where(Message.participation_id.in_(list(messages))).order_by(Message.id)
        ):
            messages[message.participation_id].append(_message_json(message))
    total = db.session.scalar(select(func.count()).where(p.run_id == run.id))
    return {
        "run_id": run.id,
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": (total + per_page - 1) // per_page,
        "contacts": [
            {
                "participation_id": row.id,
                "contact_id": row.contact_id,
                "phone": row.phone,
                "name": row.name,
                "state": row.state,
                "node": row.node_id,
                "vars": (row.engine_state or {}).get("variables", {}),
                "error": row.error,
                "wake_at": iso_z(row.wake_at),
                "started_at": iso_z(row.started_at),
                "updated_at": iso_z(row.updated_at),
                "messages": messages[row.id],
            }
            for row in rows
        ],
    }


def _message_json(message: Message) -> dict:
    return {
        "id": message.id,
        "node": message.node_id,
        "channel": message.channel,
        "body": message.body,
        "content_sid": message.content_sid,
        "status": message.status,
        "sid": message.sid,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "created_at": iso_z(message.created_at),
        "sent_at": iso_z(message.sent_at),
    }
