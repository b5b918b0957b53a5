"""The Senders page: each sender of the pools with its channel, its limit and its rate in the last minute.

Also supplies every page with the Twilio outage banner (`_partials/twilio_outage.html`).
"""

from dataclasses import dataclass
from datetime import timedelta

from flask import Blueprint, current_app, render_template
from sqlalchemy import func, select

from app.extensions import db
from app.models import message_table, utcnow
from app.sending import breaker
from app.sending.channels import CHANNELS
from app.sending.senders_pool import SenderSettingError, all_senders

bp = Blueprint("senders", __name__, url_prefix="/senders")

RATE_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class SenderRow:
    channel_label: str
    address: str
    limit: float
    last_minute: int


@bp.app_context_processor
def _twilio_outage():
    """`twilio_outage` for the banner: since when Twilio is unreachable (None while it answers)."""
    return {"twilio_outage": breaker.outage_summary()}


@bp.get("/")
def index():
    setting_error = None
    try:
        senders = all_senders()
    except SenderSettingError as error:
        senders, setting_error = [], str(error)
    sent = _sent_last_minute([address for _, address, _ in senders])
    rows = [
        SenderRow(CHANNELS[channel].label, address, limit, sent.get(address, 0)) for channel, address, limit in senders
    ]
    return render_template(
        "senders/index.html",
        here="senders",
        rows=rows,
        setting_error=setting_error,
        global_limit=current_app.config.get("MESSAGE_RATE_LIMIT") or "no limit",
        messaging_service=current_app.config.get("TWILIO_MESSAGING_SERVICE_SID"),
    )


def _sent_last_minute(addresses: list[str]) -> dict[str, int]:
    """Messages each address sent in the last minute (an index range per address: `ix_message_from_sent`)."""
    if not addresses:
        return {}
    m = message_table.c
    counts = db.session.execute(
        select(m.from_address, func.count())
        .where(m.from_address.in_(addresses), m.sent_at >= utcnow() - RATE_WINDOW)
        .group_by(m.from_address)
    ).all()
    return dict(counts)
