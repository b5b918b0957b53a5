"""Twilio's inbound-message webhook, refused unless Twilio signed it (`twilio_requests`; status callbacks:
`status_lane`).

What arrived is stored before the answer, and only that: one INSERT with
bounded lock waits, so a busy database is answered within seconds (503 when
the row could not be stored: Twilio retries those). The message is handled
right after its commit, with bounded waits too, or by the sweeper if that
failed (the answer is 200 either way: the message is stored). Nothing here
needs Redis to succeed.
"""

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from app.contacts import phones
from app.extensions import db
from app.models import InboundMessage, bulk, utcnow
from app.models.vocabulary import RECEIVED
from app.models.waits import bounded_waits
from app.models.waits import init_app as init_bounded_waits
from app.runs import inbound as reply_routing
from app.web import twilio_requests
from app.web.twilio_requests import STORE_SECONDS, not_stored, twiml

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks/twilio")
bp.record_once(lambda state: init_bounded_waits(state.app))

# How long handling a stored inbound message may wait for locks before it is left to the sweeper (5 s in all).
HANDLE_SECONDS = 1.5
MAX_MEDIA = 10  # Twilio attaches at most 10 media to a message


@bp.before_request
def _verify_signature():
    return twilio_requests.refusal(request, current_app.config)


@bp.post("/inbound")
def inbound():
    """An inbound message: stored once per MessageSid, then handled (STOP/START, reply); 200 once stored."""
    form = request.form
    sid = form.get("MessageSid", "").strip()
    sender = form.get("From", "").strip()
    if not sid or not sender:
        return Response("MessageSid and From are required", 400)
    try:
        with bounded_waits(STORE_SECONDS):
            inbound_id = _store_once(sid, sender, form)
            db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        current_app.logger.error("inbound message %s: %s", sid, error)
        return not_stored("inbound message", sid)
    if inbound_id is not None:  # None: a repeat of a message already stored
        _handle_stored(inbound_id)
    return twiml()


def _handle_stored(inbound_id: int) -> None:
    """Handle the stored message now, its lock waits bounded too; if this fails, the sweeper handles it later."""
    try:
        with bounded_waits(HANDLE_SECONDS):
            reply_routing.handle_received(inbound_id)
    except Exception:
        db.session.rollback()
        current_app.logger.exception(
            "inbound message %d stored but not handled yet; the sweeper will retry", inbound_id
        )


def _store_once(sid: str, sender: str, form) -> int | None:
    """Insert the inbound row; None when its MessageSid was already stored (the unique key decides)."""
    insert = bulk.insert_ignore(InboundMessage.__table__, ["sid"]).values(
        sid=sid[:64],
        from_phone=phones.bare_phone(sender)[:32],
        to_address=(form.get("To") or "")[:64] or None,
        channel="whatsapp" if sender.lower().startswith("whatsapp:") else "sms",
        body=form.get("Body") or "",
        payload=(form.get("ButtonPayload") or "")[:256] or None,
        outcome=RECEIVED,
        received_at=utcnow(),
        media=_media(form),
    )
    return db.session.execute(insert.returning(InboundMessage.__table__.c.id)).scalar()


def _media(form) -> list[dict] | None:
    """`MediaUrl{N}` / `MediaContentType{N}` for N below `NumMedia`, as `[{"url", "content_type"}]`."""
    try:
        count = min(int(form.get("NumMedia") or 0), MAX_MEDIA)
    except ValueError:
        count = 0
    media = [
        {"url": form[f"MediaUrl{n}"], "content_type": form.get(f"MediaContentType{n}") or None}
        for n in range(count)
        if form.get(f"MediaUrl{n}")
    ]
    return media or None
