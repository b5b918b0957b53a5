"""The designer's default sample contact: the first audience contact that has the fields the journey uses.

Without one, the first preview and simulation would show "no value: order_id"
for a journey whose audience has that column all along.
"""

from __future__ import annotations

from sqlalchemy import select

from app.engine.placeholders import placeholders
from app.extensions import db
from app.models import Audience, AudienceContact, Contact

CANDIDATES = 200
BUILT_IN = {"phone", "name"}


def used_fields(doc: dict) -> set[str]:
    """Top-level variables the journey's templates read without a default (`<<order_id>>`, `<<order.status>>`)."""
    names: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, str):
            names.update(p.path.split(".")[0] for p in placeholders(value) if p.default is None)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(doc.get("nodes", []) if isinstance(doc, dict) else [])
    return names


def contact_fields(contact: Contact) -> dict:
    """A contact as template variables: its fields, phone and name."""
    fields = {key: value for key, value in (contact.fields or {}).items() if value not in (None, "")}
    fields["phone"] = contact.phone
    if contact.name:
        fields["name"] = contact.name
    return fields


def default_sample(doc: dict) -> dict:
    """Fields of the first contact (newest audience first) that has every field the journey uses; {} if none."""
    needed = used_fields(doc) - BUILT_IN
    contacts = db.session.scalars(
        select(Contact)
        .join(AudienceContact, AudienceContact.contact_id == Contact.id)
        .join(Audience, Audience.id == AudienceContact.audience_id)
        .order_by(Audience.created_at.desc(), Audience.id.desc(), Contact.id)
        .limit(CANDIDATES)
    )
    best, best_score = None, -1
    for contact in contacts:
        score = len(needed & {key for key, value in (contact.fields or {}).items() if value not in (None, "")})
        if score > best_score:
            best, best_score = contact, score
        if score == len(needed):
            break
    return contact_fields(best) if best is not None else {}
