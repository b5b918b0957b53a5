"""Opting contacts out (STOP) and back in (START), by phone; and by an operator, by contact."""

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite

from app.contacts import suppression
from app.contacts.phones import bare_phone
from app.extensions import db
from app.models import Contact, contact_table, utcnow


def opt_out(phone: str, commit: bool = True) -> int:
    """Stop every message to this number (a contact row is made for unknown numbers); return the contact id."""
    return _set_opted_out([phone], True, commit=commit, via="reply")[0]


def opt_in(phone: str, commit: bool = True) -> int:
    """Undo `opt_out` for this number, and any suppression of it: its owner asked; return the contact id."""
    suppression.lift(phone)
    return _set_opted_out([phone], False, commit=commit, via="reply")[0]


def set_by_operator(contact: Contact, opted_out: bool, user_id: int | None, via: str = "operator") -> None:
    """An operator (page or API) opts the contact out or in; who and when are kept. The caller commits."""
    now = utcnow()
    values = {"opted_out": opted_out, "updated_at": now}
    if opted_out:
        values.update(opted_out_at=now, opted_out_by_id=user_id, opted_out_via=via)
    else:
        values.update(opted_out_at=None, opted_in_at=now, opted_in_by_id=user_id)
    db.session.execute(update(Contact).where(Contact.id == contact.id).values(**values))
    db.session.expire(contact)


def _set_opted_out(phones: list[str], opted_out: bool, commit: bool = False, via: str | None = None) -> list[int]:
    """Upsert contacts by phone with this opt-out flag (atomic: no read-then-write race)."""
    now = utcnow()
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    changes = (
        {"opted_out_at": now, "opted_out_by_id": None, "opted_out_via": via}
        if opted_out
        else {"opted_out_at": None, "opted_in_at": now, "opted_in_by_id": None}
    )
    ids = []
    for phone in dict.fromkeys(bare_phone(phone) for phone in phones):
        insert = dialect.insert(contact_table).values(
            phone=phone,
            fields={},
            opted_out=opted_out,
            created_at=now,
            updated_at=now,
            **changes,
        )
        ids.append(
            db.session.execute(
                insert.on_conflict_do_update(
                    index_elements=["phone"],
                    set_={
                        "opted_out": insert.excluded.opted_out,
                        "updated_at": insert.excluded.updated_at,
                        **{name: insert.excluded[name] for name in changes},
                    },
                ).returning(contact_table.c.id)
            ).scalar_one()
        )
    if commit:
        db.session.commit()
    return ids
