"""A campaign's pre-flight, shown on its preview before Send: the same answer as a run's.

One message per contact; recipients after suppression (opted out,
duplicates; invalid rows were refused at upload); SMS segments of each
rendered body; the estimated duration from the rate limits and the send
window; blockers (no sender for the channel, WhatsApp free text to contacts
outside their 24-hour session) and warnings.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import select

from app.engine.placeholders import render, sms_info
from app.engine.windows import parse_window
from app.extensions import db
from app.models import Campaign, Contact, InboundMessage, utcnow
from app.runs.preflight import SAMPLE_CONTACTS, WHATSAPP_SESSION, estimate_seconds, sender_addresses

CHUNK = 5000


def campaign_preflight(
    campaign: Campaign, recipients: list, body: str, channel: str, start_at: datetime | None, send_window
) -> dict:
    """The pre-flight of sending `body` on `channel` to a draft's `recipients` (service.Recipient)."""
    config, blockers, warnings = current_app.config, [], []
    phones, people, duplicate = set(), [], 0
    for recipient in recipients:
        if recipient.phone in phones:
            duplicate += 1
            continue
        phones.add(recipient.phone)
        people.append((recipient.phone, recipient.fields))
    opted_out = _matching(select(Contact.phone).where(Contact.opted_out.is_(True)), Contact.phone, phones)
    people = [person for person in people if person[0] not in opted_out]
    if not sender_addresses(config, channel):
        text = f"no {channel} sender is configured"
        (warnings if config.get("DRY_RUN") else blockers).append(text)
    if channel == "whatsapp" and people:
        since = utcnow() - WHATSAPP_SESSION
        recent = _matching(
            select(InboundMessage.from_phone).where(InboundMessage.received_at >= since),
            InboundMessage.from_phone,
            {phone for phone, _ in people},
        )
        outside = len(people) - len(recent)
        if outside:
            blockers.append(
                f"{outside:,} contact(s) have not written in the last 24 hours: WhatsApp free text to them fails "
                "at Twilio (63016); send them an approved template instead"
            )
    segments = [max(1, sms_info(render(body or "", fields).text).segments) for _, fields in people[:SAMPLE_CONTACTS]]
    window = parse_window(send_window) if send_window else None
    seconds = estimate_seconds(window, people, 1, channel, start_at or utcnow(), warnings) if people else 0.0
    return {
        "recipients": len(people),
        "suppressed": {
            "opted_out": len(opted_out),
            "invalid": len(campaign.rejected or []),
            "duplicate": duplicate,
            "already_active": 0,
        },
        "messages_per_contact": {"min": 1, "max": 1},
        "segments_per_contact": {"min": min(segments, default=0), "max": max(segments, default=0)},
        "estimated_seconds": seconds,
        "blockers": blockers,
        "warnings": warnings,
    }


def _matching(query, column, phones: set[str]) -> set[str]:
    """The phones among `phones` that `query` (selecting phones) returns, asked in chunks."""
    listed, found = sorted(phones), set()
    for start in range(0, len(listed), CHUNK):
        found |= set(db.session.scalars(query.where(column.in_(listed[start : start + CHUNK])).distinct()))
    return found
