"""Numbers that must never be messaged again, remembered only as a hash once their contact is erased.

Erasing a contact removes its number from the contact row, but a later CSV,
campaign or API call may bring the same number back. `suppressed_phone`
keeps SHA-256 of the E.164 number (not the number itself), and:
- imports create such a number's contact already opted out
  (`app.contacts.audiences`), so runs and previews count it as opted out;
- the send path fails any message to it before claiming (`messaging.deliver`),
  which also covers campaigns, whose rows need no contact.
The person can lift it by replying START from that number (`optout.opt_in`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import delete, select

from app.contacts.phones import bare_phone
from app.extensions import db
from app.models import SuppressedPhone, utcnow
from app.models.bulk import insert_ignore

SUPPRESSED_REASON = "Not sent: this number's contact was erased on request, so it is never messaged again."


def phone_hash(phone: str) -> str:
    return hashlib.sha256(bare_phone(phone).encode()).hexdigest()


def suppress(phone: str, user_id: int | None = None, reason: str = "erased") -> None:
    """Remember the number (its hash) as never to be messaged; the caller commits."""
    db.session.execute(
        insert_ignore(SuppressedPhone.__table__, ["phone_hash"]).values(
            phone_hash=phone_hash(phone), reason=reason, created_by_id=user_id, created_at=utcnow()
        )
    )


def lift(phone: str) -> None:
    """Forget the number's suppression (its owner replied START); the caller commits."""
    db.session.execute(delete(SuppressedPhone).where(SuppressedPhone.phone_hash == phone_hash(phone)))


def suppressed(phones: Iterable[str]) -> set[str]:
    """Those of these numbers that are suppressed (as given)."""
    by_hash: dict[str, list[str]] = {}
    for phone in phones:
        by_hash.setdefault(phone_hash(phone), []).append(phone)
    found: set[str] = set()
    hashes = list(by_hash)
    for start in range(0, len(hashes), 1000):
        chunk = hashes[start : start + 1000]
        for (hashed,) in db.session.execute(
            select(SuppressedPhone.phone_hash).where(SuppressedPhone.phone_hash.in_(chunk))
        ):
            found.update(by_hash[hashed])
    return found


def any_suppressed() -> bool:
    """Cheap guard: most databases have no suppressed number, and then no phone needs hashing."""
    return db.session.scalar(select(SuppressedPhone.phone_hash).limit(1)) is not None


def is_suppressed(phone: str) -> bool:
    return bool(suppressed([phone]))
