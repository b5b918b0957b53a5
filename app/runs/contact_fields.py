"""`set` nodes with `scope: contact`: their values become the contact's own fields.

The engine marks such a `set` trail entry with `"scope": "contact"`; the
runner hands every such entry of a batch here, in the transaction that stores
the step, so the fields are saved exactly when the step is, and later runs
and campaigns read them like any CSV column.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select, update

from app.extensions import db
from app.models import Contact, utcnow


def values_to_save(trail) -> dict:
    """The variables of this trail's contact-scoped `set` entries, later ones winning."""
    values: dict = {}
    for entry in trail:
        if entry.get("kind") == "set" and entry.get("scope") == "contact":
            values.update(entry.get("vars") or {})
    return values


def merged(fields: dict, values: dict) -> dict:
    """`fields` with `values` written in; a name matches an existing field whatever its case."""
    result = dict(fields)
    by_folded = {str(name).casefold(): name for name in result}
    for name, value in values.items():
        result.pop(by_folded.get(name.casefold(), name), None)
        result[name] = value
        by_folded[name.casefold()] = name
    return result


def save(values_by_contact: dict[int, dict]) -> None:
    """Merge these values into the contacts' fields (rows locked on PostgreSQL, one executemany UPDATE)."""
    if not values_by_contact:
        return
    ids = sorted(values_by_contact)
    current = dict(
        db.session.execute(
            select(Contact.id, Contact.fields).where(Contact.id.in_(ids)).order_by(Contact.id).with_for_update()
        ).all()
    )
    now, table = utcnow(), Contact.__table__
    rows = []
    for contact_id in ids:
        if contact_id not in current:
            continue
        values = values_by_contact[contact_id]
        rows.append({"b_id": contact_id, "b_fields": merged(current[contact_id] or {}, values), "b_now": now})
        name = next((str(value) for key, value in values.items() if key.casefold() == "name"), None)
        if name is not None:  # the contact's display name is a field too
            db.session.execute(update(table).where(table.c.id == contact_id).values(name=name[:200] or None))
    if not rows:
        return
    db.session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(fields=bindparam("b_fields"), updated_at=bindparam("b_now")),
        rows,
    )
