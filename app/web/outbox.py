"""The outbox: every outbound message (campaigns and journeys), newest first.

In dry-run mode this is where "sent" messages are read. The message log
(`app.web.message_log`) is shared with the campaign detail page.
"""

from flask import Blueprint, current_app, render_template

from app.extensions import db
from app.models import Message, Participation, Run
from app.sending.channels import CHANNELS, explain_error
from app.web.message_log import STATUSES, log_page, wants_log_fragment

bp = Blueprint("outbox", __name__, url_prefix="/outbox")


@bp.app_template_global()
def error_explanation(message: Message) -> str:
    """Why a message failed, in plain words (its code explained, else the recorded reason)."""
    if message.error_code:
        return explain_error(message.error_code)
    return message.error_message or ""


@bp.app_template_global()
def sender_of(message: Message) -> str:
    """The address a message goes out from: its own when recorded, else the configured sender of its channel."""
    recorded = getattr(message, "from_address", None)
    if recorded:
        return recorded
    config = current_app.config
    if message.channel == "whatsapp":
        configured = config.get("TWILIO_WHATSAPP_FROM")
    else:
        configured = config.get("TWILIO_FROM") or config.get("TWILIO_MESSAGING_SERVICE_SID")
    return str(configured or "").split(",")[0].strip() or ("none (dry run)" if message.dry_run else "—")


@bp.app_template_global()
def runs_of_messages(messages: list[Message]) -> dict[int, Run]:
    """The run of each journey message on the page, by participation id (one query)."""
    ids = {message.participation_id for message in messages if message.participation_id}
    if not ids:
        return {}
    rows = db.session.execute(
        db.select(Participation.id, Run).join(Run, Run.id == Participation.run_id).where(Participation.id.in_(ids))
    )
    return {row[0]: row[1] for row in rows}


@bp.get("/")
def index():
    log = log_page("outbox.index", {})
    template = "outbox/_partials/messages.html" if wants_log_fragment() else "outbox/index.html"
    return render_template(template, log=log, statuses=STATUSES, channels=sorted(CHANNELS), show_source=True)
