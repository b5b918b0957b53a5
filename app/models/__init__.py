"""Database models, one module per area; import them from here.

Times are naive UTC (`utcnow()`), the same on SQLite and PostgreSQL. The
schema changes only through Flask-Migrate migrations under `migrations/`.
"""

from app.models.accounts import AccountRefused, ApiToken, User, check_keeps_an_admin, check_new_account, first_user_role
from app.models.campaigns import Campaign
from app.models.contacts import Audience, AudienceContact, Contact, SuppressedPhone
from app.models.journeys import Journey, JourneyVersion
from app.models.messages import (
    InboundMessage,
    Message,
    MessageEvent,
    SendingState,
    StatusCallback,
    WorkerHeartbeat,
)
from app.models.runs import Participation, Run, Step
from app.models.vocabulary import (
    ACTIVE_STATES,
    FINAL_STATES,
    FINISHED_RUN_STATUSES,
    LIVE_RUN_STATUSES,
    ROLES,
    RUN_KINDS,
    RUN_STATUSES,
    SCHEDULED,
    STATES,
    utcnow,
)

# Core-level handles for bulk statements (executemany, INSERT … ON CONFLICT, UPDATE … FROM).
campaign_table = Campaign.__table__
contact_table = Contact.__table__
event_table = MessageEvent.__table__
message_table = Message.__table__
participation_table = Participation.__table__
step_table = Step.__table__
status_callback_table = StatusCallback.__table__
heartbeat_table = WorkerHeartbeat.__table__
sending_state_table = SendingState.__table__

__all__ = [
    "campaign_table",
    "contact_table",
    "event_table",
    "message_table",
    "participation_table",
    "step_table",
    "status_callback_table",
    "heartbeat_table",
    "sending_state_table",
    "ACTIVE_STATES",
    "FINAL_STATES",
    "FINISHED_RUN_STATUSES",
    "LIVE_RUN_STATUSES",
    "RUN_KINDS",
    "RUN_STATUSES",
    "SCHEDULED",
    "STATES",
    "ApiToken",
    "Audience",
    "AudienceContact",
    "Campaign",
    "Contact",
    "InboundMessage",
    "Journey",
    "JourneyVersion",
    "Message",
    "MessageEvent",
    "Participation",
    "Run",
    "SendingState",
    "Step",
    "StatusCallback",
    "SuppressedPhone",
    "User",
    "WorkerHeartbeat",
    "utcnow",
    "ROLES",
    "AccountRefused",
    "check_keeps_an_admin",
    "check_new_account",
    "first_user_role",
]
