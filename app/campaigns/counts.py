"""Campaign counts, computed from the message log (cumulative, as the API documents)."""

from collections.abc import Iterable

from sqlalchemy import func, select

from app.extensions import db
from app.models import message_table
from app.models.vocabulary import DELIVERED_STATUSES, FAILED_STATUSES, UNSENT


def campaign_counts(campaign_id: int) -> dict:
    """Exact counts from the message log: total, queued, sent, delivered, failed, canceled.

    Cumulative as docs/api.md defines them: `sent` is every message Twilio accepted
    (has a sid), including those delivered, read or failed later; `queued` is
    not yet accepted (waiting, retrying or in flight).
    """
    return campaigns_counts([campaign_id])[campaign_id]


def campaigns_counts(campaign_ids: Iterable[int]) -> dict[int, dict]:
    """`campaign_counts` for many campaigns in one grouped query (campaign lists)."""
    ids = list(campaign_ids)
    counts = {
        campaign_id: {"total": 0, "queued": 0, "sent": 0, "delivered": 0, "failed": 0, "canceled": 0}
        for campaign_id in ids
    }
    if not ids:
        return counts
    m = message_table.c
    rows = db.session.execute(
        select(m.campaign_id, m.status, func.count(), func.count(m.sid))
        .where(m.campaign_id.in_(ids))
        .group_by(m.campaign_id, m.status)
    )
    for campaign_id, status, number, accepted in rows:
        tally = counts[campaign_id]
        tally["total"] += number
        tally["sent"] += accepted
        if status in UNSENT:
            tally["queued"] += number
        elif status in DELIVERED_STATUSES:
            tally["delivered"] += number
        elif status in FAILED_STATUSES:
            tally["failed"] += number
        elif status == "canceled":
            tally["canceled"] += number
    return counts
