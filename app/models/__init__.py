"""Database models, one module per area; import them from here.

Times are naive UTC (`utcnow()`), the same on SQLite and PostgreSQL. The
schema changes only through Flask-Migrate migrations under `migrations/`.
"""

from app.models.accounts import ApiToken, User
from app.models.campaigns import Campaign
from app.models.contacts import Audience, AudienceContact, Contact
from app.models.journeys import Journey, JourneyVersion
from app.models.messages import InboundMessage, Message, MessageEvent
from app.models.runs import Participation, Run, Step
from app.models.vocabulary import (
    ACTIVE_STATES,
    FINAL_STATES,
    FINISHED_RUN_STATUSES,
    LIVE_RUN_STATUSES,
    RUN_STATUSES,
    STATES,
    utcnow,
)

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "FINISHED_RUN_STATUSES",
    "LIVE_RUN_STATUSES",
    "RUN_STATUSES",
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
    "Step",
    "User",
    "utcnow",
]
