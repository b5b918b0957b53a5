"""Outbound messaging through Twilio, with plain values in and out.

Pure adapter (twilio SDK, aiohttp, standard library): no Flask, database or
Redis here, so the messaging worker can call it with the values it holds.
"""

from .channels import CHANNELS, Channel, SmsChannel, WhatsAppChannel
from .errors import classify_error, explain_error
from .messages import FoundMessage, LookupResult, OutboundMessage, SenderSettings, SendResult, SentLookup
from .senders import DryRunSender, TwilioSender, get_sender

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
