"""The message log's bookkeeping: send results, status events, finished campaigns, cancelling queued messages."""

from collections.abc import Iterable

from sqlalchemy import and_, or_, select, update

from app.extensions import db
from app.models import campaign_table, event_table, message_table, utcnow
from app.models.bulk import InsertIgnoreRows, PerRow, by_key_only
from app.models.vocabulary import UNSENT


def _complete_campaigns(campaign_ids: set[int]) -> None:
    """Campaigns with no message left to send become `completed`, in one atomic UPDATE.

    Run in its own transaction after the results are committed: of two jobs
    finishing the same campaign at once, the later to commit then sees the
    other's rows, so the campaign cannot be left `sending` forever.
    """
    if not campaign_ids:
        return
    unsent = (
        select(message_table.c.id)
        .where(message_table.c.campaign_id == campaign_table.c.id, message_table.c.status.in_(UNSENT))
        .exists()
    )
    db.session.execute(
        update(campaign_table)
        .where(campaign_table.c.id.in_(campaign_ids), campaign_table.c.status.in_(UNSENT), ~unsent)
        .values(status="completed", finished_at=utcnow())
    )
    db.session.commit()


_EVENTS = InsertIgnoreRows(event_table, ["message_id", "status"], ["message_id", "status", "error_code", "at"])


def _insert_events(events: list[dict]) -> None:
    if events:
        _EVENTS.execute(events)


def cancel_messages(*criteria, commit: bool = True) -> int:
    """Mark `queued` messages matching these `Message` column criteria `canceled`; return how many."""
    count = db.session.execute(
        update(message_table)
        .where(message_table.c.status == "queued", *criteria)
        .values(status="canceled", updated_at=utcnow())
    ).rowcount
    if commit:
        db.session.commit()
    return count


def cancel_campaign(campaign_id: int, commit: bool = True) -> int:
    """Stop a campaign: its queued messages are not sent (those already in flight finish)."""
    count = cancel_messages(message_table.c.campaign_id == campaign_id, commit=False)
    db.session.execute(
        update(campaign_table)
        .where(campaign_table.c.id == campaign_id, campaign_table.c.status.in_(UNSENT))
        .values(status="canceled", finished_at=utcnow())
    )
    if commit:
        db.session.commit()
    return count


def cancel_for_participations(participation_ids: Iterable[int], commit: bool = True) -> int:
    """Cancel the queued messages of these participations (a stopped run or contact)."""
    ids = list(participation_ids)
    if not ids:
        return 0
    return cancel_messages(message_table.c.participation_id.in_(ids), commit=commit)


def write_results(updates: list[dict]) -> None:
    """One statement for the results. An acceptance is also recorded on a row recovery had put back to
    `queued` meanwhile (its worker looked dead): the send that happened wins, and the row is not sent again."""
    _RESULTS.execute(updates)


def _result_update(row):
    m = message_table.c
    status = by_key_only(m.status)
    accepted_late = and_(row.b_status == "sent", status == "queued", by_key_only(m.sid).is_(None))
    return (
        update(message_table)
        .where(m.id == row.b_id, or_(status == "sending", accepted_late))
        .values(
            status=row.b_status,
            sid=row.b_sid,
            error_code=row.b_error_code,
            error_message=row.b_error_message,
            sent_at=row.b_sent_at,
            next_attempt_at=row.b_next_attempt_at,
            dry_run=row.b_dry_run,
            attempts=row.b_attempts,
            from_address=row.b_from,
            claimed_by=None,
            updated_at=row.b_updated_at,
        )
    )


_RESULTS = PerRow(
    {
        f"b_{name}": message_table.c[name].type
        for name in [
            "id",
            "status",
            "sid",
            "error_code",
            "error_message",
            "sent_at",
            "next_attempt_at",
            "dry_run",
            "attempts",
            "updated_at",
        ]
    }
    | {"b_from": message_table.c.from_address.type},
    _result_update,
)
