"""Changing one contact: its fields, its opt-out (by an operator, recorded who and when), erasing it.

Opting out here does what a STOP reply does: the contact's live
participations end as `opted_out` and their queued messages are canceled
(`app.runs.lifecycle.opt_out_contact`). Erasing goes further: fields, name and
the text of every message in and out are removed, the number is replaced by a
placeholder and remembered only as a hash (`app.contacts.suppression`), so no
later import can message it.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import delete, func, select, update

from app.contacts import optout, suppression
from app.contacts.search import fold
from app.extensions import db
from app.models import (
    Audience,
    AudienceContact,
    Contact,
    InboundMessage,
    Message,
    Participation,
    Step,
    utcnow,
)
from app.runs import lifecycle
from app.sending import log

FIELD_NAME_MAX = 64
FIELDS_MAX = 200
ERASED_PREFIX = "erased:"


class ContactChangeError(ValueError):
    """A change that cannot be made; the message names the field or the rule."""


def update_fields(contact: Contact, changes) -> Contact:
    """Merge `changes` into the contact's fields (a None value removes the field); commit.

    `phone` cannot be changed (contacts are unique by number); `name` also sets the searchable name.
    """
    if contact.erased_at is not None:
        raise ContactChangeError("this contact was erased: its fields cannot be changed")
    if not isinstance(changes, dict):
        raise ContactChangeError('fields must be an object: {"fields": {"name": "Ana", "plan": null}}')
    fields = dict(contact.fields or {})
    for key, value in changes.items():
        name = key.strip() if isinstance(key, str) else ""
        if not name or len(name) > FIELD_NAME_MAX:
            raise ContactChangeError(f"fields.{key}: a field name must be 1 to {FIELD_NAME_MAX} characters")
        if name == "phone":
            raise ContactChangeError("fields.phone: the phone cannot be changed; it identifies the contact")
        if value is None:
            fields.pop(name, None)
        elif isinstance(value, (str, int, float, bool, list, dict)):
            fields[name] = value
        else:
            raise ContactChangeError(f"fields.{name}: unsupported value")
    if len(fields) > FIELDS_MAX:
        raise ContactChangeError(f"fields: at most {FIELDS_MAX} fields per contact")
    contact.fields = fields
    name = fields.get("name")
    contact.name = (name.strip()[:200] or None) if isinstance(name, str) else None
    contact.search_name = fold(contact.name)
    contact.updated_at = utcnow()
    db.session.commit()
    return contact


def opt_out(contact: Contact, user_id: int | None, via: str = "operator") -> int:
    """Opt the contact out now; its live participations end as `opted_out`. Returns how many ended."""
    if contact.erased_at is not None:
        raise ContactChangeError("this contact was erased: it is already opted out for good")
    optout.set_by_operator(contact, True, user_id, via)
    db.session.commit()
    who = "the API" if via == "api" else "an operator"
    return lifecycle.opt_out_contact(contact.id, reason=f"opted out by {who}")


def opt_in(contact: Contact, user_id: int | None) -> None:
    """Opt the contact back in (messages may be sent again); refused for an erased or suppressed number."""
    if contact.erased_at is not None:
        raise ContactChangeError("this contact was erased: it cannot be opted in again")
    if suppression.is_suppressed(contact.phone):
        raise ContactChangeError(
            "this number belonged to an erased contact and stays suppressed; "
            "only a START reply from the number itself lifts that"
        )
    optout.set_by_operator(contact, False, user_id)
    db.session.commit()


def erase(contact: Contact, user_id: int | None) -> None:
    """Erase the contact: see the module's docstring. One transaction, then its participations end."""
    if contact.erased_at is not None:
        return
    phone, placeholder, now = contact.phone, f"{ERASED_PREFIX}{contact.id}", utcnow()
    suppression.suppress(phone, user_id)
    log.cancel_messages(Message.to_phone == phone, commit=False)
    db.session.execute(
        update(Message)
        .where(Message.to_phone == phone)
        .values(to_phone=placeholder, body=None, content_variables=None, media_url=None)
    )
    inbound_values = {"from_phone": placeholder, "body": "", "payload": None, "contact_id": contact.id}
    if hasattr(InboundMessage, "media"):
        inbound_values["media"] = None
    db.session.execute(update(InboundMessage).where(InboundMessage.from_phone == phone).values(**inbound_values))
    _forget_journey_memory(contact.id)
    _leave_audiences(contact.id)
    db.session.execute(
        update(Contact)
        .where(Contact.id == contact.id)
        .values(
            phone=placeholder,
            name=None,
            search_name=None,
            fields={},
            opted_out=True,
            opted_out_at=now,
            opted_out_by_id=user_id,
            opted_out_via="erased",
            erased_at=now,
            updated_at=now,
        )
    )
    lifecycle.opt_out_contact(contact.id, reason="the contact was erased")  # commits the whole erasure
    db.session.expire(contact)
    current_app.logger.info("contact %s erased by user %s", contact.id, user_id)


def _forget_journey_memory(contact_id: int) -> None:
    """Replies and stored variables of the contact's runs: texts go, the path taken stays."""
    participation_ids = select(Participation.id).where(Participation.contact_id == contact_id)
    steps = db.session.scalars(
        select(Step).where(Step.participation_id.in_(participation_ids), Step.kind.in_(("reply", "set")))
    ).all()
    for step in steps:
        detail = dict(step.detail or {})
        for key in ("text", "payload", "vars"):
            if key in detail:
                detail[key] = None
        step.detail = detail
    for participation in db.session.scalars(select(Participation).where(Participation.contact_id == contact_id)):
        state = dict(participation.engine_state or {})
        if state.get("variables"):
            state["variables"] = {}
            participation.engine_state = state


def _leave_audiences(contact_id: int) -> None:
    audience_ids = db.session.scalars(
        select(AudienceContact.audience_id).where(AudienceContact.contact_id == contact_id)
    ).all()
    db.session.execute(delete(AudienceContact).where(AudienceContact.contact_id == contact_id))
    for audience_id in audience_ids:
        remaining = (
            select(func.count())
            .select_from(AudienceContact)
            .where(AudienceContact.audience_id == audience_id)
            .scalar_subquery()
        )
        db.session.execute(update(Audience).where(Audience.id == audience_id).values(total=remaining))
