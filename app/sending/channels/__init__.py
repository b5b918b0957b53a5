"""Outbound messaging through Twilio, with plain values in and out.

Pure adapter (twilio SDK, aiohttp, standard library): no Flask, database or
Redis here, so the messaging worker can call it with the values it holds.
"""

from app.sending.channels.channels import CHANNELS, Channel, SmsChannel, WhatsAppChannel
from app.sending.channels.errors import classify_error, explain_error
from app.sending.channels.messages import (
    FoundMessage,
    LookupResult,
    OutboundMessage,
    SenderSettings,
    SendResult,
    SentLookup,
)
from app.sending.channels.senders import DryRunSender, TwilioSender, get_sender

__all__ = [
    "CHANNELS",
    "Channel",
    "DryRunSender",
    "FoundMessage",
    "LookupResult",
    "OutboundMessage",
    "SendResult",
    "SentLookup",
    "SenderSettings",
    "SmsChannel",
    "TwilioSender",
    "WhatsAppChannel",
    "classify_error",
    "explain_error",
    "get_sender",
]
