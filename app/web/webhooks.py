"""Twilio webhooks: inbound messages and status callbacks, each refused unless Twilio signed it.

The signature is checked against the public URL (`PUBLIC_BASE_URL` + path,
or the request's own URL when unset). With no `TWILIO_AUTH_TOKEN` nothing can
be verified, so every webhook is refused (403) and logged, dry run or not:
an unsigned endpoint would let anyone opt contacts out or fake deliveries.
"""

import re

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from app.contacts import optout, phones
from app.extensions import db
from app.models import Contact, InboundMessage, bulk, utcnow
from app.runs import inbound as reply_routing
from app.runs import lifecycle
from app.sending import callbacks

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks/twilio")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Whole-message keywords (case, spaces and punctuation ignored), as Twilio's own opt-out handling,
# plus Portuguese PARAR/SAIR for opting out.
OPT_OUT_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "PARAR", "SAIR"}
OPT_IN_WORDS = {"START", "UNSTOP"}


@bp.before_request
def _verify_signature():
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    if not token:
        current_app.logger.warning("refused Twilio webhook %s: TWILIO_AUTH_TOKEN is not set", request.path)
        return Response("webhook signatures cannot be checked: TWILIO_AUTH_TOKEN is not set", 403)
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not RequestValidator(token).validate(_public_url(), request.form, signature):
        current_app.logger.warning(
            "refused Twilio webhook %s from %s: bad or missing X-Twilio-Signature (checked against %s)",
            request.path,
            request.remote_addr,
            _public_url(),
            extra={"message_sid": request.form.get("MessageSid")},
        )
        return Response("invalid X-Twilio-Signature", 403)
    return None


def _public_url() -> str:
    """The URL Twilio signed: ours as the outside world sees it."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if not base:
        return request.url
    query = request.query_string.decode()
    return base.rstrip("/") + request.path + (f"?{query}" if query else "")


def _twiml() -> Response:
    return Response(EMPTY_TWIML, 200, mimetype="text/xml")


@bp.post("/status")
def status():
    """A status callback: move the message forward (never back)."""
    form = request.form
    callbacks.record_status(form.get("MessageSid", ""), form.get("MessageStatus", ""), form.get("ErrorCode"))
    return _twiml()


@bp.post("/inbound")
def inbound():
    """An inbound message: store it once per MessageSid, handle STOP/START, then route it."""
    form = request.form
    sid = form.get("MessageSid", "").strip()
    sender = form.get("From", "").strip()
    if not sid or not sender:
        return Response("MessageSid and From are required", 400)
    channel = "whatsapp" if sender.lower().startswith("whatsapp:") else "sms"
    phone = phones.bare_phone(sender)
    inbound_id = _store_once(sid, phone, channel, form)
    if inbound_id is None:
        return _twiml()  # a repeat of a message already processed

    row = db.session.get(InboundMessage, inbound_id)
    keyword = re.sub(r"[\W_]+", "", row.body).upper()
    if keyword in OPT_OUT_WORDS:
        row.contact_id, row.outcome = optout.opt_out(phone, commit=False), "opted_out"
    elif keyword in OPT_IN_WORDS:
        row.contact_id, row.outcome = optout.opt_in(phone, commit=False), "opted_in"
    else:
        row.contact_id = db.session.scalar(select(Contact.id).where(Contact.phone == phone))
    db.session.commit()
    # Journey replies are routed from here, once per new inbound message.
    if row.outcome == "opted_out":
        lifecycle.opt_out_contact(row.contact_id)
    elif row.outcome == "received":
        reply_routing.handle_inbound(inbound_id)
    return _twiml()


def _store_once(sid: str, phone: str, channel: str, form) -> int | None:
    """Insert the inbound row; None when its MessageSid was already stored (the unique key decides)."""
    insert = bulk.insert_ignore(InboundMessage.__table__, ["sid"]).values(
        sid=sid,
        from_phone=phone,
        to_address=form.get("To") or None,
        channel=channel,
        body=form.get("Body") or "",
        payload=(form.get("ButtonPayload") or "")[:256] or None,
        outcome="received",
        received_at=utcnow(),
    )
    return db.session.execute(insert.returning(InboundMessage.__table__.c.id)).scalar()
