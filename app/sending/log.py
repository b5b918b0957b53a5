"""The message log's bookkeeping: status events, finished campaigns, cancelling queued messages."""

from collections.abc import Iterable

from sqlalchemy import select, update

from app.extensions import db
from app.models import campaign_table, event_table, message_table, utcnow
from app.models.bulk import insert_ignore
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


def _insert_events(events: list[dict]) -> None:
    if events:
        db.session.execute(insert_ignore(event_table, ["message_id", "status"]), events)


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
