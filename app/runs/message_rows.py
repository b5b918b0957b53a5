"""The message rows a step's `SendMessage` effects become, once each (`participation:node:visit`).

A replayed step finds its rows already there: an accepted or failed one has its outcome fed
again instead of being sent twice, a queued one is sent."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import (
    bulk,
    message_table,
)
from app.models.vocabulary import NOT_DELIVERED_STATUSES, iso_z

if TYPE_CHECKING:  # the runner imports this module: only its batch type is needed here
    from app.runs.runner import _Batch


def _insert_messages(sends: list[tuple], batch: _Batch, now: datetime, held: dict) -> list[dict]:
    """Insert-or-get the message rows of `SendMessage` effects; return their `message` steps.

    A key that already exists is not sent again: if it was accepted (or
    failed for good) its outcome is fed after the commit instead. A message
    `held` for its send window is stored with `not_before` and not enqueued.
    """
    if not sends:
        return []
    dry_run = bool(current_app.config.get("DRY_RUN"))
    rows = {
        idempotency_key(row.id, effect.node_id, effect.visit): _message_row(row, effect, held, dry_run, now)
        for row, effect in sends
    }
    # No RETURNING: with many rows it is several times slower on PostgreSQL than one SELECT after. Rows
    # this INSERT wrote carry its `created_at`; an older one was there before (a replayed step).
    _MESSAGE_INSERTS.execute(list(rows.values()))
    inserted = _sort_existing(rows, batch, now, held)
    batch.send += [mid for key, mid in inserted.items() if rows[key]["participation_id"] not in held]
    steps = []
    for row, effect in sends:
        key = idempotency_key(row.id, effect.node_id, effect.visit)
        if key in inserted:
            steps.append(_message_step(row, effect, inserted[key], held, now))
    return steps


# The columns of `_message_row`, inserted in one statement per batch; a key already there is left alone.
_MESSAGE_INSERTS = bulk.InsertIgnoreRows(
    message_table,
    ["idempotency_key"],
    [
        "participation_id",
        "run_id",
        "node_id",
        "idempotency_key",
        "contact_id",
        "to_phone",
        "channel",
        "body",
        "content_sid",
        "content_variables",
        "media_url",
        "status",
        "not_before",
        "attempts",
        "dry_run",
        "created_at",
        "updated_at",
    ],
)


def _message_row(row, effect, held: dict, dry_run: bool, now: datetime) -> dict:
    return {
        "participation_id": row.id,
        "run_id": row.run_id,
        "node_id": effect.node_id,
        "idempotency_key": idempotency_key(row.id, effect.node_id, effect.visit),
        "contact_id": row.contact_id,
        "to_phone": row.phone,
        "channel": effect.channel,
        "body": effect.body,
        "content_sid": effect.content_sid,
        "content_variables": effect.content_variables,
        "media_url": effect.media_url,
        "status": "queued",
        "not_before": held.get(row.id),
        "attempts": 0,
        "dry_run": dry_run,
        "created_at": now,
        "updated_at": now,
    }


def _sort_existing(rows: dict, batch: _Batch, now: datetime, held: dict) -> dict[str, int]:
    """Ids of the rows this INSERT wrote; an older row's outcome is fed (or it is sent) instead."""
    m = message_table.c
    inserted = {}
    for found in db.session.execute(
        select(m.id, m.idempotency_key, m.status, m.sid, m.error_message, m.created_at).where(
            m.idempotency_key.in_(list(rows))
        )
    ):
        pid = rows[found.idempotency_key]["participation_id"]
        if found.created_at == now:
            inserted[found.idempotency_key] = found.id
        elif found.sid is not None:
            batch.resume.append((pid, found.id, found.idempotency_key, found.sid, True, None))
        elif found.status in NOT_DELIVERED_STATUSES:
            batch.resume.append((pid, found.id, found.idempotency_key, None, False, found.error_message))
        elif found.status == "queued" and pid not in held:
            batch.send.append(found.id)
    return inserted


def _message_step(row, effect, message_id: int, held: dict, now: datetime) -> dict:
    detail = {"message_id": message_id, "status": "queued", "channel": effect.channel}
    if effect.missing:
        detail["missing"] = list(effect.missing)
    if row.id in held:
        detail.update(status="delayed", wake_at=iso_z(held[row.id]))
    return {
        "participation_id": row.id,
        "run_id": row.run_id,
        "kind": "message",
        "node_id": effect.node_id,
        "detail": detail,
        "at": now,
    }


def idempotency_key(participation_id: int, node_id: str | None, visit: int | None) -> str:
    """The one key of a journey message: `participation:node:visit` (unique in the message log)."""
    return f"{participation_id}:{node_id}:{visit}"
