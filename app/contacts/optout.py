"""Opting contacts out (STOP) and back in (START), by phone."""

from sqlalchemy.dialects import postgresql, sqlite

from app.contacts.phones import bare_phone
from app.extensions import db
from app.models import contact_table, utcnow


def opt_out(phone: str, commit: bool = True) -> int:
    """Stop every message to this number (a contact row is made for unknown numbers); return the contact id."""
    return _set_opted_out([phone], True, commit=commit)[0]


def opt_in(phone: str, commit: bool = True) -> int:
    """Undo `opt_out` for this number; return the contact id."""
    return _set_opted_out([phone], False, commit=commit)[0]


def _set_opted_out(phones: list[str], opted_out: bool, commit: bool = False) -> list[int]:
    """Upsert contacts by phone with this opt-out flag (atomic: no read-then-write race)."""
    now = utcnow()
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    ids = []
    for phone in dict.fromkeys(bare_phone(phone) for phone in phones):
        insert = dialect.insert(contact_table).values(
            phone=phone,
            fields={},
            opted_out=opted_out,
            opted_out_at=now if opted_out else None,
            created_at=now,
            updated_at=now,
        )
        ids.append(
            db.session.execute(
                insert.on_conflict_do_update(
                    index_elements=["phone"],
                    set_={
                        "opted_out": insert.excluded.opted_out,
                        "opted_out_at": insert.excluded.opted_out_at,
                        "updated_at": insert.excluded.updated_at,
                    },
                ).returning(contact_table.c.id)
            ).scalar_one()
        )
    if commit:
        db.session.commit()
    return ids
