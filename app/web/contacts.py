"""Contacts pages: search, one contact (fields, opt-out, audiences, runs, timeline, a one-off message), erase.

Every change is a POST (CSRF-checked, and covered by the central role rule);
opting out or in and erasing ask for confirmation first.
"""

import json

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.contacts import manage, profile, replies
from app.contacts import search as contact_search
from app.extensions import db
from app.models import ACTIVE_STATES, Contact, User, utcnow
from app.runs import operator_replies
from app.web import htmx

bp = Blueprint("contacts", __name__, url_prefix="/contacts")


@bp.get("/")
def index():
    query = (request.args.get("q") or "").strip()
    page = max(1, request.args.get("page", 1, type=int))
    found = contact_search.search(query, page, region=current_app.config["DEFAULT_REGION"])
    return htmx.page_or_fragment("contacts/index.html", "contacts/_partials/results.html", query=query, found=found)


@bp.get("/<int:contact_id>")
def show(contact_id: int):
    contact = db.get_or_404(Contact, contact_id)
    return render_template("contacts/show.html", **_page_context(contact))


def _page_context(contact: Contact, **extra) -> dict:
    users = {
        user_id: db.session.get(User, user_id)
        for user_id in (contact.opted_out_by_id, contact.opted_in_by_id)
        if user_id is not None
    }
    return {
        "contact": contact,
        "fields": [(name, _shown(value)) for name, value in (contact.fields or {}).items()],
        "runs": profile.runs_of(contact),
        "audiences": profile.audiences_of(contact),
        "timeline": profile.timeline(contact),
        "timeline_limit": profile.TIMELINE_LIMIT,
        "users": users,
        "reply": _reply_context(contact),
        "reply_as": _reply_as_context(contact),
        **extra,
    }


def _reply_as_context(contact: Contact) -> dict | None:
    """The run the contact waits in, if any: an operator may answer for it ("Reply as the contact")."""
    participation = operator_replies.waiting_for_reply([contact.id]).get(contact.id) if not contact.erased_at else None
    if participation is None:
        return None
    return {"participation": participation, "choices": operator_replies.reply_choices(participation)}


def _shown(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _reply_context(contact: Contact, **extra) -> dict:
    ends = replies.whatsapp_window_ends(contact)
    return {
        "contact": contact,
        "key": replies.new_key(),
        "whatsapp_open": ends is not None and ends > utcnow(),
        "whatsapp_ends": ends,
        "channel": extra.pop("channel", "whatsapp" if ends and ends > utcnow() else "sms"),
        "error": None,
        "sent": None,
        "body": "",
        "content_sid": "",
        **extra,
    }


@bp.get("/<int:contact_id>/_partials/reply")
def reply_form(contact_id: int):
    """htmx: the reply form, loaded when an inbox row's Reply is opened."""
    contact = db.get_or_404(Contact, contact_id)
    return render_template("contacts/_partials/reply_form.html", reply=_reply_context(contact))


@bp.post("/<int:contact_id>/fields")
def update_fields(contact_id: int):
    contact = db.get_or_404(Contact, contact_id)
    try:
        manage.update_fields(contact, _field_changes(contact, request.form))
    except manage.ContactChangeError as error:
        return render_template("contacts/show.html", **_page_context(contact, fields_error=str(error))), 400
    flash("Fields saved.", "success")
    return redirect(url_for(".show", contact_id=contact.id) + "#fields")


def _field_changes(contact: Contact, form) -> dict:
    """The form's rows (key/value pairs, ticked ones removed) as a PATCH: unchanged values keep their type."""
    old = contact.fields or {}
    removed = set(form.getlist("remove"))
    changes: dict = {name: None for name in old if name != "phone"}
    for name, value in zip(form.getlist("key"), form.getlist("value"), strict=False):
        name = name.strip()
        if not name or name in removed or name == "phone" or (name not in old and value == ""):
            continue
        changes[name] = old[name] if name in old and _shown(old[name]) == value else value
    for name in removed:
        changes[name] = None
    return changes


@bp.post("/<int:contact_id>/opt-out")
def opt_out(contact_id: int):
    contact = db.get_or_404(Contact, contact_id)
    try:
        ended = manage.opt_out(contact, current_user.id)
    except manage.ContactChangeError as error:
        flash(str(error), "error")
    else:
        flash(f"Opted out. {ended} live run participation{'s' if ended != 1 else ''} ended.", "success")
    return redirect(url_for(".show", contact_id=contact.id))


@bp.post("/<int:contact_id>/opt-in")
def opt_in(contact_id: int):
    contact = db.get_or_404(Contact, contact_id)
    try:
        manage.opt_in(contact, current_user.id)
    except manage.ContactChangeError as error:
        flash(str(error), "error")
    else:
        flash("Opted in: messages may be sent to this contact again.", "success")
    return redirect(url_for(".show", contact_id=contact.id))


@bp.get("/<int:contact_id>/erase")
def erase_confirm(contact_id: int):
    contact = db.get_or_404(Contact, contact_id)
    if contact.erased_at is not None:
        flash("This contact is already erased.", "info")
        return redirect(url_for(".show", contact_id=contact.id))
    return render_template(
        "contacts/erase.html",
        contact=contact,
        runs=[run for run in profile.runs_of(contact) if run.state in ACTIVE_STATES],
        messages=len(profile.timeline(contact)),
    )


@bp.post("/<int:contact_id>/erase")
def erase(contact_id: int):
    contact = db.get_or_404(Contact, contact_id)
    manage.erase(contact, current_user.id)
    flash(f"Contact {contact.id} erased; its number will not be messaged again.", "success")
    return redirect(url_for(".show", contact_id=contact.id))


@bp.post("/<int:contact_id>/messages")
def send_message(contact_id: int):
    """A one-off message; htmx swaps the reply form with the result, a plain POST redirects."""
    contact = db.get_or_404(Contact, contact_id)
    form = request.form
    values = {"body": form.get("body", ""), "channel": form.get("channel") or "sms"}
    values["content_sid"] = form.get("content_sid", "")
    try:
        reply = replies.send_reply(contact, **values, key=form.get("key"))
    except replies.ReplyRefused as error:
        context = _reply_context(contact, **values, error=error)
        if htmx.wants_fragment():
            return render_template("contacts/_partials/reply_form.html", reply=context)
        flash(error.message, "error")
        return redirect(url_for(".show", contact_id=contact.id))
    if htmx.wants_fragment():
        return render_template("contacts/_partials/reply_form.html", reply=_reply_context(contact, sent=reply.message))
    flash(f"Message queued (#{reply.message.id}).", "success")
    return redirect(url_for(".show", contact_id=contact.id))
