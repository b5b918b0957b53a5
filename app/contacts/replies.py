"""A one-off message to one contact (a reply from the inbox or the contact's page), through the normal pipeline.

It is a `Message` row with no campaign and no run, queued and sent by
`app.sending.messaging` like every other: logged, rate limited, failed if the
contact opted out meanwhile. Refused up front when it could not be delivered:
an opted-out or erased contact, or WhatsApp free text outside the 24-hour
window that WhatsApp allows after the contact's last message (Twilio error
63016); outside it only an approved template (`content_sid`) may be sent.
An idempotency key (from the form or the API client) makes a repeated submit
send once.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from app.contacts import suppression
from app.extensions import db
from app.models import Contact, InboundMessage, Message, utcnow
from app.sending import messaging
from app.sending.channels import CHANNELS

WHATSAPP_WINDOW = timedelta(hours=24)
BODY_MAX = 1600
KEY_MAX = 100


class ReplyRefused(ValueError):
    """The message cannot be sent; `field` names what to fix and `needs_template` flags the WhatsApp rule."""

    def __init__(self, field: str, message: str, needs_template: bool = False):
        super().__init__(message)
        self.field = field
        self.message = message
        self.needs_template = needs_template


@dataclass
class Reply:
    message: Message
    created: bool  # False when the idempotency key named a message sent before


def new_key() -> str:
    return uuid.uuid4().hex


def whatsapp_window_ends(contact: Contact) -> datetime | None:
    """When the WhatsApp free-text window closes (24 h after the last inbound WhatsApp message), or None."""
    last = db.session.scalar(
        select(func.max(InboundMessage.received_at)).where(
            InboundMessage.from_phone == contact.phone, InboundMessage.channel == "whatsapp"
        )
    )
    return last + WHATSAPP_WINDOW if last else None


def send_reply(
    contact: Contact,
    *,
    body: str | None,
    channel: str = "sms",
    content_sid: str | None = None,
    content_variables=None,
    key: str | None = None,
) -> Reply:
    """Queue one message to the contact and enqueue its send; raise ReplyRefused naming the problem."""
    key = (key or "").strip()[:KEY_MAX] or new_key()
    idempotency_key = f"reply:{key}"
    existing = db.session.scalar(select(Message).where(Message.idempotency_key == idempotency_key))
    if existing is not None:
        return Reply(existing, created=False)
    body, channel, content_sid, variables = _checked(contact, body, channel, content_sid, content_variables)
    message = Message(
        contact_id=contact.id,
        to_phone=contact.phone,
        channel=channel,
        body=body,
        content_sid=content_sid,
        content_variables=variables,
        idempotency_key=idempotency_key,
        status="queued",
        dry_run=bool(current_app.config.get("DRY_RUN")),
    )
    db.session.add(message)
    db.session.commit()
    messaging.enqueue_messages([message.id])
    current_app.logger.info("one-off %s message %s queued for contact %s", channel, message.id, contact.id)
    return Reply(message, created=True)


def _checked(contact: Contact, body, channel, content_sid, content_variables):
    if contact.erased_at is not None:
        raise ReplyRefused("contact", "this contact was erased: nothing can be sent to it")
    if contact.opted_out:
        raise ReplyRefused(
            "contact", "this contact opted out: nothing is sent to it until it replies START or is opted in"
        )
    if suppression.is_suppressed(contact.phone):
        raise ReplyRefused("contact", suppression.SUPPRESSED_REASON)
    channel = (channel or "sms").strip().lower()
    if channel not in CHANNELS:
        raise ReplyRefused("channel", f"unknown channel {channel!r}: use one of {', '.join(sorted(CHANNELS))}")
    body = (body or "").strip() if isinstance(body, str) or body is None else None
    if body is None:
        raise ReplyRefused("body", "body must be text")
    content_sid = (content_sid or "").strip() or None
    if content_sid and (channel != "whatsapp" or not content_sid.startswith("HX")):
        raise ReplyRefused("content_sid", "content_sid is a WhatsApp template id starting with HX")
    if not content_sid and not body:
        raise ReplyRefused("body", "write the message to send")
    if len(body) > BODY_MAX:
        raise ReplyRefused("body", f"the message is {len(body)} characters; at most {BODY_MAX}")
    if channel == "whatsapp" and not content_sid:
        _check_whatsapp_window(contact)
    return body or None, channel, content_sid, _variables(content_variables)


def _check_whatsapp_window(contact: Contact) -> None:
    ends = whatsapp_window_ends(contact)
    if ends is not None and ends > utcnow():
        return
    last = (
        "has never written on WhatsApp"
        if ends is None
        else f"last wrote on {ends - WHATSAPP_WINDOW:%Y-%m-%d %H:%M} UTC"
    )
    raise ReplyRefused(
        "body",
        "WhatsApp allows free text only within 24 hours of the contact's last WhatsApp message, and this "
        f"contact {last}. Send an approved template instead: give its content_sid (HX…).",
        needs_template=True,
    )


def _variables(content_variables):
    if content_variables in (None, "", {}):
        return None
    if isinstance(content_variables, str):
        try:
            content_variables = json.loads(content_variables)
        except ValueError:
            raise ReplyRefused("content_variables", "content_variables must be a JSON object") from None
    if not isinstance(content_variables, dict):
        raise ReplyRefused("content_variables", 'content_variables must be a JSON object such as {"1": "Ana"}')
    return {str(name): str(value) for name, value in content_variables.items()}
