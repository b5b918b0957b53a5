"""JSON API: `GET /api/inbound?outcome=&q=&before=&per_page=`, inbound messages newest first.

Each: `id`, `from`, `body`, `payload`, `outcome`, `received_at` (ISO 8601, Z),
plus `channel`, `contact_id`, `run_id` and `media`. Keyset pages: the answer's
`next_before` is the `before` of the next (older) page, null on the last.
"""

from flask import abort, jsonify, request

from app.contacts import inbox
from app.models.vocabulary import INBOUND_OUTCOMES, RECEIVED, iso_z
from app.web.api import bp
from app.web.api.contacts import whole_number_arg


@bp.get("/inbound")
def list_inbound():
    outcome = request.args.get("outcome")
    if outcome and outcome not in (*INBOUND_OUTCOMES, RECEIVED):
        abort(400, f"outcome must be one of {', '.join(INBOUND_OUTCOMES)}")
    filters = inbox.InboxFilter.from_args(request.args)
    per_page = min(whole_number_arg("per_page", inbox.PER_PAGE), inbox.PER_PAGE_MAX)
    before = whole_number_arg("before", 0) if request.args.get("before") else None
    found = inbox.page(filters, before=before, per_page=per_page)
    return jsonify(
        inbound=[_inbound_json(row) for row in found.rows],
        total=inbox.count(filters),
        per_page=per_page,
        next_before=found.older,
    )


def _inbound_json(row: inbox.InboxRow) -> dict:
    message = row.message
    return {
        "id": message.id,
        "from": message.from_phone,
        "body": message.body,
        "payload": message.payload,
        "outcome": message.outcome,
        "received_at": iso_z(message.received_at),
        "channel": message.channel,
        "contact_id": message.contact_id,
        "run_id": row.run_id,
        "media": row.media,
    }
