"""Twilio webhooks: inbound messages and status callbacks, each refused unless Twilio signed it.

The signature is checked against the public URL (`PUBLIC_BASE_URL` + path,
or the request's own URL when unset). With no `TWILIO_AUTH_TOKEN` nothing can
be verified, so every webhook is refused (403) and logged, dry run or not:
an unsigned endpoint would let anyone opt contacts out or fake deliveries.
"""

from flask import Blueprint, Response, current_app, request
from twilio.request_validator import RequestValidator

from app.contacts import phones
from app.runs import inbound as reply_routing
from app.sending import callbacks

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks/twilio")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


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
    """An inbound message: stored once per MessageSid, STOP/START handled, then routed (`app.runs.inbound`)."""
    form = request.form
    sid = form.get("MessageSid", "").strip()
    sender = form.get("From", "").strip()
    if not sid or not sender:
        return Response("MessageSid and From are required", 400)
    channel = "whatsapp" if sender.lower().startswith("whatsapp:") else "sms"
    reply_routing.receive(
        sid,
        phones.bare_phone(sender),
        channel,
        form.get("Body") or "",
        form.get("ButtonPayload"),
        form.get("To"),
    )
    return _twiml()
