"""JSON API: contacts (search, one contact with its runs and timeline, fields, opt-out/in, erase, a one-off message).

`GET /api/contacts?q=&page=&per_page=` answers `contacts`, `total`, `page`,
`per_page` and `pages`; `per_page` is 50 by default, at most 500.
`POST /api/contacts/<id>/messages` sends a one-off message: `{"body",
"channel"?, "content_sid"?, "content_variables"?, "idempotency_key"?}` ->
202 `{"id", "status", "created"}`; 409 when the contact cannot be messaged
(opted out, erased, or WhatsApp free text outside the 24-hour window, then
with `"needs_template": true`).
"""

from flask import abort, current_app, g, jsonify, request

from app.contacts import manage, profile, replies
from app.contacts import search as contact_search
from app.extensions import db
from app.models import Contact
from app.models.vocabulary import iso_z
from app.web.api import bp

PER_PAGE_MAX = 500


def contact_json(contact: Contact) -> dict:
    return {
        "id": contact.id,
        "phone": contact.phone,
        "fields": contact.fields or {},
        "opted_out": contact.opted_out,
    }


@bp.get("/contacts")
def list_contacts():
    page = whole_number_arg("page", 1)
    per_page = min(whole_number_arg("per_page", contact_search.PER_PAGE), PER_PAGE_MAX)
    found = contact_search.search(request.args.get("q"), page, per_page, current_app.config["DEFAULT_REGION"])
    return jsonify(
        contacts=[contact_json(contact) for contact in found.contacts],
        total=found.total,
        page=page,
        per_page=per_page,
        pages=found.pages,
    )


@bp.get("/contacts/<int:contact_id>")
def get_contact(contact_id: int):
    contact = _contact(contact_id)
    data = contact_json(contact)
    data.update(
        name=contact.name,
        opted_out_at=iso_z(contact.opted_out_at),
        opted_in_at=iso_z(contact.opted_in_at),
        erased=contact.erased_at is not None,
        audiences=[{"id": audience.id, "name": audience.name} for audience in profile.audiences_of(contact)],
        runs=[run.as_json() for run in profile.runs_of(contact)],
        messages=[entry.as_json() for entry in profile.timeline(contact)],
    )
    return jsonify(data)


@bp.patch("/contacts/<int:contact_id>")
def patch_contact(contact_id: int):
    contact = _contact(contact_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "fields" not in body:
        abort(400, 'the body must be a JSON object: {"fields": {"name": "Ana", "plan": null}}')
    try:
        manage.update_fields(contact, body["fields"])
    except manage.ContactChangeError as error:
        abort(400, str(error))
    return jsonify(contact_json(contact))


@bp.post("/contacts/<int:contact_id>/opt-out")
def opt_out_contact(contact_id: int):
    contact = _contact(contact_id)
    try:
        ended = manage.opt_out(contact, g.api_user.id, via="api")
    except manage.ContactChangeError as error:
        abort(409, str(error))
    return jsonify(**contact_json(contact), participations_ended=ended)


@bp.post("/contacts/<int:contact_id>/opt-in")
def opt_in_contact(contact_id: int):
    contact = _contact(contact_id)
    try:
        manage.opt_in(contact, g.api_user.id)
    except manage.ContactChangeError as error:
        abort(409, str(error))
    return jsonify(contact_json(contact))


@bp.delete("/contacts/<int:contact_id>")
def erase_contact(contact_id: int):
    contact = _contact(contact_id)
    manage.erase(contact, g.api_user.id)
    return jsonify(id=contact.id, erased=True)


@bp.post("/contacts/<int:contact_id>/messages")
def send_message(contact_id: int):
    contact = _contact(contact_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, 'the body must be a JSON object: {"body": "…", "channel": "sms"}')
    key = body.get("idempotency_key") or request.headers.get("Idempotency-Key")
    try:
        reply = replies.send_reply(
            contact,
            body=body.get("body"),
            channel=body.get("channel") or "sms",
            content_sid=body.get("content_sid"),
            content_variables=body.get("content_variables"),
            key=str(key) if key is not None else None,
        )
    except replies.ReplyRefused as error:
        status = 409 if error.field == "contact" or error.needs_template else 400
        return jsonify(error=f"{error.field}: {error.message}", needs_template=error.needs_template), status
    return jsonify(id=reply.message.id, status=reply.message.status, created=reply.created), 202


def _contact(contact_id: int) -> Contact:
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        abort(404, f"no contact {contact_id}")
    return contact


def whole_number_arg(name: str, default: int) -> int:
    value = request.args.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        abort(400, f"{name} must be a whole number of at least 1")
    return number
