"""Sender pools: which address a message goes out from, and how fast each address may send.

`TWILIO_FROM` (SMS) and `TWILIO_WHATSAPP_FROM` may each list several
addresses. A contact always gets a channel's messages from the same one, so a
conversation stays on one number. The choice is rendezvous (highest random
weight) hashing of (channel, sender, phone): it needs no stored state, gives
the same answer in every process, spreads contacts evenly, and when the pool
changes only the contacts that must move do: removing a sender moves just its
own contacts, adding one moves about 1/n of the others to the newcomer (and
nobody else). A message also stores the address it went out from
(`Message.from_address`), so a retry or a crash recovery keeps it.

With a Messaging Service (`TWILIO_MESSAGING_SERVICE_SID`) Twilio picks the
SMS sender itself (its own sticky sender), so there is no SMS pool here.
"""

import hashlib
from collections.abc import Mapping

from flask import current_app

from app.sending.channels import CHANNELS


class SenderSettingError(ValueError):
    """A sender setting that cannot be read; the message names the variable."""


def _config(config: Mapping | None) -> Mapping:
    return current_app.config if config is None else config


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def senders_for(channel: str, config: Mapping | None = None) -> list[str]:
    """The sender addresses of a channel's pool, as Twilio writes them (`+1…`, `whatsapp:+1…`); [] if none."""
    config = _config(config)
    if channel == "sms":
        if config.get("TWILIO_MESSAGING_SERVICE_SID"):
            return []
        raw = config.get("TWILIO_FROM")
    elif channel == "whatsapp":
        raw = config.get("TWILIO_WHATSAPP_FROM")
    else:
        return []
    addresses = [CHANNELS[channel].address(part) for part in _split(raw)]
    return list(dict.fromkeys(addresses))


def _weight(channel: str, sender: str, phone: str) -> bytes:
    return hashlib.blake2b(f"{channel}|{sender}|{phone}".encode(), digest_size=8).digest()


def sender_for(contact, channel: str, config: Mapping | None = None) -> str | None:
    """The address this contact (a phone or anything with `.phone`) gets `channel` messages from, or None.

    None when the channel has no pool (not configured, or a Messaging Service chooses).
    """
    phone = contact if isinstance(contact, str) else contact.phone
    pool = senders_for(channel, config)
    if not pool:
        return None
    phone = phone.strip().removeprefix("whatsapp:")
    return max(pool, key=lambda sender: _weight(channel, sender, phone))


def sender_rates(config: Mapping | None = None) -> dict[str, float]:
    """`SENDER_RATE_LIMITS` read as {address: messages per second}; raises SenderSettingError naming a bad entry."""
    config = _config(config)
    rates = {}
    for entry in _split(config.get("SENDER_RATE_LIMITS")):
        address, _, rate = entry.rpartition("=")
        try:
            value = float(rate)
        except ValueError:
            value = -1.0
        if not address or value < 0:
            raise SenderSettingError(
                f"SENDER_RATE_LIMITS: {entry!r} is not ADDRESS=RATE (e.g. +15005550006=1 or whatsapp:+15005550006=80)"
            )
        rates[address.strip()] = value
    return rates


def rate_for(address: str, config: Mapping | None = None) -> float:
    """Messages per second this sender address may send (0 = no per-sender limit)."""
    config = _config(config)
    overrides = sender_rates(config)
    if address in overrides:
        return overrides[address]
    return float(config.get("SENDER_RATE_LIMIT") or 0)


def all_senders(config: Mapping | None = None) -> list[tuple[str, str, float]]:
    """Every configured sender as (channel, address, its rate limit), SMS first."""
    config = _config(config)
    return [
        (channel, address, rate_for(address, config))
        for channel in ("sms", "whatsapp")
        for address in senders_for(channel, config)
    ]
