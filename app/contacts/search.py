"""Finding contacts by phone or name, fast over hundreds of thousands of rows on both databases.

Every search is a prefix search that an index answers: the name folded into
`Contact.search_name` (lower case, accents and repeated spaces removed, kept
up to date by every write of a name) starts with the folded query, or the
E.164 phone starts with the query's digits (as written, or after the default
region's country code, so "555 01" finds "+155501…"). A query that is a whole
valid number matches that number exactly. Prefixes are read as index ranges
(`>= prefix AND < next prefix`), which SQLite and PostgreSQL both serve from a
B-tree whatever the collation, plus an exact LIKE for the rows in range.
`bench/bench_contacts.py` measures it on 100,000 contacts.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from sqlalchemy import and_, func, or_, select

from app.extensions import db
from app.models import Contact

PER_PAGE = 50
QUERY_MAX = 100
_DIGITS_ONLY = re.compile(r"^[\s+()\-./\d]+$")


def fold(name: str | None) -> str | None:
    """A name as searches compare it: lower case, no accents, single spaces (None when empty)."""
    if not name:
        return None
    decomposed = unicodedata.normalize("NFKD", name)
    text = "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()
    return " ".join(text.split())[:200] or None


@dataclass
class SearchPage:
    contacts: list[Contact]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def search(query: str | None, page: int = 1, per_page: int = PER_PAGE, region: str = "US") -> SearchPage:
    """One page of the contacts matching `query` (all contacts when empty) and how many match in all.

    Name matches come in name order, phone matches in phone order, everything else newest first.
    """
    query = (query or "").strip()[:QUERY_MAX]
    criteria, order = _criteria(query, region)
    statement = select(Contact).where(*criteria).order_by(*order)
    contacts = db.session.scalars(statement.offset((page - 1) * per_page).limit(per_page)).all()
    total = db.session.scalar(select(func.count()).select_from(Contact).where(*criteria))
    return SearchPage(list(contacts), total, page, per_page)


def _criteria(query: str, region: str) -> tuple[list, list]:
    if not query:
        return [], [Contact.id.desc()]
    if _DIGITS_ONLY.match(query) and sum(char.isdigit() for char in query) >= 2:
        return [or_(*_phone_conditions(query, region))], [Contact.phone, Contact.id]
    folded = fold(query) or ""
    return [_prefix(Contact.search_name, folded)], [Contact.search_name, Contact.id]


def _phone_conditions(query: str, region: str) -> list:
    """The phone starts with the digits as typed, or after the region's country code; or is the number."""
    digits = "".join(char for char in query if char.isdigit())
    prefixes = {"+" + digits}
    if not query.lstrip().startswith("+"):
        country_code = phonenumbers.country_code_for_region(region)
        if country_code:
            prefixes.add(f"+{country_code}{digits.lstrip('0')}")
    try:
        number = phonenumbers.parse(query, region)
        if phonenumbers.is_valid_number(number):
            prefixes.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    except phonenumbers.NumberParseException:
        pass
    return [_prefix(Contact.phone, prefix) for prefix in sorted(prefixes)]


def _prefix(column, prefix: str):
    """`column` starts with `prefix`, written as an index range plus an exact LIKE."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    conditions = [column >= prefix, column.like(escaped + "%", escape="\\")]
    if upper is not None:
        conditions.append(column < upper)
    return and_(*conditions)
