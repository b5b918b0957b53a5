"""Audiences: named lists of contacts uploaded as CSV, and the one way contacts are saved.

Files are read by the same importer as campaigns (`app.contacts.csv_import`), so a file that works for one works
for the other and rejected rows are reported the same way. Contacts are unique by E.164 phone: uploading a
number again updates that contact instead of duplicating it. Its fields are merged: new columns are added,
non-empty values replace old ones, and an empty cell never erases a value already stored (a re-upload with a
column left blank must not lose data).

Imports are bulk and chunked (one query per chunk to find existing phones, bulk insert of new contacts,
bulk update of changed ones, bulk insert of memberships), all in one transaction: 100,000 rows take seconds
(`bench/bench_audience_import.py`), and a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from flask import current_app
from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

# CsvImportError is re-exported: callers catch audiences.CsvImportError.
from app.contacts.csv_import import CsvImportError, RejectedRow, import_contacts_csv, normalise_phone  # noqa: F401
from app.contacts.search import fold
from app.contacts.suppression import any_suppressed, suppressed
from app.extensions import db
from app.models import FINISHED_RUN_STATUSES, Audience, AudienceContact, Run, bulk, contact_table, utcnow

CHUNK_SIZE = 1000
NAME_MAX = 200

membership_table = AudienceContact.__table__


class AudienceInUse(Exception):
    """An active run is still reading the audience's contacts."""


def import_audience(
    name: str,
    data: bytes,
    phone_column: str | None = None,
    default_region: str | None = None,
    audience: Audience | None = None,
) -> tuple[Audience, list[RejectedRow]]:
    """Import a CSV into a new audience (or add it to `audience`); return it with the rejected rows.

    Raises CsvImportError (nothing written) when the file cannot be used at all.
    """
    region = default_region or current_app.config["DEFAULT_REGION"]
    result = import_contacts_csv(
        data, region, phone_column=phone_column, max_columns=current_app.config["CSV_MAX_COLUMNS"]
    )
    if audience is None:
        audience = Audience(name=(name or "").strip()[:NAME_MAX] or f"Audience {utcnow():%Y-%m-%d %H:%M}")
        db.session.add(audience)
    try:
        db.session.flush()
        ids = _upsert({contact.phone: contact.fields for contact in result.contacts})
        _add_members(audience.id, ids)
        audience.columns = _merged_columns(audience.columns or [], result.columns)
        audience.rejected = [{"line": row.line, "reason": row.reason, "raw": row.raw} for row in result.rejected]
        audience.total = db.session.scalar(
            select(func.count()).select_from(membership_table).where(membership_table.c.audience_id == audience.id)
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    bulk.refresh_statistics_after(len(ids), contact_table, membership_table)
    return audience, result.rejected


def upsert_contacts(contacts: Iterable[dict]) -> list[int]:
    """Save contacts given as dicts with a `phone` (any format) and any other fields; return their ids.

    Ids come in the order of first appearance, one per distinct phone (a phone listed twice is one contact,
    its fields merged in order; values are kept as given, so JSON objects stay reachable by dotted
    paths). Raises ValueError naming the contact (1-based) when a phone is invalid;
    nothing is written then. The caller commits.
    """
    region = current_app.config["DEFAULT_REGION"]
    by_phone: dict[str, dict] = {}
    for position, contact in enumerate(contacts, start=1):
        if not isinstance(contact, dict):
            raise ValueError(f"contact {position}: must be an object with a phone")
        try:
            phone = normalise_phone(str(contact.get("phone") or ""), region)
        except ValueError as error:
            raise ValueError(f"contact {position}: {error}") from None
        fields = {str(key): value for key, value in contact.items()}
        fields["phone"] = phone
        by_phone[phone] = _merged(by_phone.get(phone, {}), fields)
    ids = _upsert(by_phone)
    return [ids[phone] for phone in by_phone]


def contact_ids(audience_id: int) -> list[int]:
    """Ids of the audience's contacts, in id order."""
    query = (
        select(membership_table.c.contact_id)
        .where(membership_table.c.audience_id == audience_id)
        .order_by(membership_table.c.contact_id)
    )
    return list(db.session.scalars(query))


def audience_rejected_rows(audience: Audience) -> list[RejectedRow]:
    """The rejected rows of the audience's last upload, for the page and the CSV download."""
    return [RejectedRow(row["line"], row["reason"], row.get("raw") or {}) for row in audience.rejected or []]


def has_active_run(audience: Audience) -> bool:
    active = (
        select(func.count())
        .select_from(Run)
        .where(Run.audience_id == audience.id, Run.status.not_in(FINISHED_RUN_STATUSES))
    )
    return db.session.scalar(active) > 0


def delete_audience(audience: Audience) -> None:
    """Delete the audience and its memberships; contacts stay (other audiences and runs use them).

    Refused while an active run uses it: a run being prepared still reads the audience's contact list.
    """
    if has_active_run(audience):
        raise AudienceInUse(f"audience {audience.name!r} is used by an active run: stop the run first")
    db.session.execute(delete(membership_table).where(membership_table.c.audience_id == audience.id))
    db.session.delete(audience)
    db.session.commit()


def _upsert(fields_by_phone: dict[str, dict]) -> dict[str, int]:
    """Insert or merge contacts (E.164 phone -> fields) in chunks; return phone -> id."""
    ids: dict[str, int] = {}
    phones = list(fields_by_phone)
    for start in range(0, len(phones), CHUNK_SIZE):
        chunk = {phone: fields_by_phone[phone] for phone in phones[start : start + CHUNK_SIZE]}
        ids.update(_upsert_chunk(chunk))
    return ids


def _upsert_chunk(chunk: dict[str, dict]) -> dict[str, int]:
    ids = _merge_existing(chunk)
    new = {phone: fields for phone, fields in chunk.items() if phone not in ids}
    if new:
        _insert_contacts(new)
        # Read the new ids back; a phone that another import inserted meanwhile is merged into that row.
        ids.update(_merge_existing(new))
    return ids


def _merge_existing(chunk: dict[str, dict]) -> dict[str, int]:
    """Merge fields into the contacts that already exist (one SELECT, one bulk UPDATE); return their ids."""
    changes = []
    ids = {}
    for contact_id, phone, name, fields in _existing_contacts(list(chunk)):
        ids[phone] = contact_id
        merged = _merged(fields or {}, chunk[phone])
        new_name = _name(chunk[phone]) or name
        if merged != fields or new_name != name:
            changes.append({"id": contact_id, "name": new_name, "search_name": fold(new_name), "fields": merged})
    if changes:
        _update_contacts(changes)
    return ids


# The four bulk statements. SQLite runs them as executemany. PostgreSQL gets each chunk as ONE JSON
# parameter expanded by the server (json_to_recordset): psycopg neither caches long parameter lists nor
# quotes text arrays cheaply, and one json.dumps is much faster than either.


def _existing_contacts(phones: list[str]):
    if _on_postgresql():
        return db.session.execute(
            text(
                "SELECT id, phone, name, fields FROM contact"
                " WHERE phone IN (SELECT json_array_elements_text(CAST(:phones AS json)))"
            ).columns(*contact_table.c["id", "phone", "name", "fields"]),
            {"phones": json.dumps(phones)},
        ).all()
    columns = (contact_table.c.id, contact_table.c.phone, contact_table.c.name, contact_table.c.fields)
    return db.session.execute(select(*columns).where(contact_table.c.phone.in_(phones))).all()


def _insert_contacts(new: dict[str, dict]) -> None:
    """Insert new contacts; a number erased before comes back opted out (`app.contacts.suppression`)."""
    now = utcnow()
    blocked = suppressed(new) if any_suppressed() else set()
    rows = [
        {
            "phone": phone,
            "name": _name(fields),
            "search_name": fold(_name(fields)),
            "fields": fields,
            "opted_out": phone in blocked,
            "opted_out_at": now if phone in blocked else None,
            "opted_out_via": "suppressed" if phone in blocked else None,
        }
        for phone, fields in new.items()
    ]
    if _on_postgresql():
        db.session.execute(
            text(
                "INSERT INTO contact (phone, name, search_name, fields, opted_out, opted_out_at, opted_out_via,"
                " created_at, updated_at)"
                " SELECT phone, name, search_name, fields, opted_out, opted_out_at, opted_out_via, :now, :now"
                " FROM json_to_recordset(CAST(:rows AS json)) AS new_contact(phone text, name text,"
                " search_name text, fields json, opted_out boolean, opted_out_at timestamp, opted_out_via text)"
                " ON CONFLICT (phone) DO NOTHING"
            ),
            {"now": now, "rows": json.dumps(rows, default=str)},
        )
        return
    for row in rows:
        row.update(created_at=now, updated_at=now)
    db.session.execute(sqlite_insert(contact_table).on_conflict_do_nothing(), rows)


def _update_contacts(changes: list[dict]) -> None:
    """`changes`: {"id", "name", "search_name", "fields"} of each contact to update."""
    now = utcnow()
    if _on_postgresql():
        db.session.execute(
            text(
                "UPDATE contact SET name = changed.name, search_name = changed.search_name,"
                " fields = changed.fields, updated_at = :now FROM json_to_recordset(CAST(:rows AS json))"
                " AS changed(id integer, name text, search_name text, fields json)"
                " WHERE contact.id = changed.id"
            ),
            {"now": now, "rows": json.dumps(changes)},
        )
        return
    statement = (
        update(contact_table)
        .where(contact_table.c.id == bindparam("changed_id"))
        .values(
            name=bindparam("changed_name"),
            search_name=bindparam("changed_search_name"),
            fields=bindparam("changed_fields"),
            updated_at=now,
        )
    )
    db.session.connection().execute(
        statement,
        [
            {
                "changed_id": row["id"],
                "changed_name": row["name"],
                "changed_search_name": row["search_name"],
                "changed_fields": row["fields"],
            }
            for row in changes
        ],
    )


def _add_members(audience_id: int, ids: dict[str, int]) -> None:
    """Insert the memberships; those that exist already (a re-upload) are skipped by the database."""
    contact_id_list = list(dict.fromkeys(ids.values()))
    for start in range(0, len(contact_id_list), CHUNK_SIZE):
        chunk = contact_id_list[start : start + CHUNK_SIZE]
        if _on_postgresql():
            db.session.execute(
                text(
                    "INSERT INTO audience_contact (audience_id, contact_id)"
                    " SELECT :audience_id, CAST(contact_id AS integer)"
                    " FROM json_array_elements_text(CAST(:contact_ids AS json)) AS member(contact_id)"
                    " ON CONFLICT DO NOTHING"
                ),
                {"audience_id": audience_id, "contact_ids": json.dumps(chunk)},
            )
        else:
            db.session.execute(
                sqlite_insert(membership_table).on_conflict_do_nothing(),
                [{"audience_id": audience_id, "contact_id": contact_id} for contact_id in chunk],
            )


def _on_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _merged(old: dict, new: dict) -> dict:
    """Old fields updated by the new ones; an empty new value never erases a stored one."""
    merged = dict(old)
    for key, value in new.items():
        if value != "" or key not in merged:
            merged[key] = value
    return merged


def _merged_columns(old: list[str], new: list[str]) -> list[str]:
    return list(dict.fromkeys([*old, *new]))


def _name(fields: dict) -> str | None:
    name = fields.get("name")
    if not isinstance(name, str):
        return None
    return name.strip()[:NAME_MAX] or None
