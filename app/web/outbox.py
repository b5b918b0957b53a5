"""The outbox: every outbound message (campaigns and journeys), newest first.

In dry-run mode this is where "sent" messages are read. The message log
(`app.web.message_log`) is shared with the campaign detail page.
"""

from flask import Blueprint, render_template

from app.models import Message
from app.sending.channels import CHANNELS, explain_error
from app.web.message_log import STATUSES, log_page, wants_log_fragment

bp = Blueprint("outbox", __name__, url_prefix="/outbox")


@bp.app_template_global()
def error_explanation(message: Message) -> str:
    """Why a message failed, in plain words (its code explained, else the recorded reason)."""
    if message.error_code:
        return explain_error(message.error_code)
    return message.error_message or ""


@bp.get("/")
def index():
    log = log_page("outbox.index", {})
    template = "outbox/_partials/messages.html" if wants_log_fragment() else "outbox/index.html"
    return render_template(template, log=log, statuses=STATUSES, channels=sorted(CHANNELS), show_source=True)
