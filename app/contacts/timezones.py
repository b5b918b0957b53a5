"""A contact's time zone, for send windows: its own `timezone` field, else its phone's country, else the default.

The country's zone comes from `phonenumbers.timezone.time_zones_for_number`.
A country with several zones (the US, Brazil, Russia, Australia…) gives
several, most specific first when the number's area code tells them apart;
otherwise phonenumbers lists the country's zones alphabetically, and we take
the first one, which is documented as a best guess. Set a contact's
`timezone` field to be exact. Lookups are remembered by number prefix
(`PREFIX_LENGTH` characters: country and area code), so 100,000 contacts
cost a few hundred lookups, not 100,000.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_timezones

from app.engine.windows import zone

UNKNOWN_ZONE = "Etc/Unknown"
PREFIX_LENGTH = 8  # "+" and 7 digits: longer than any country code and area code phonenumbers tells zones by
CACHE_LIMIT = 100_000
_zone_by_prefix: dict[str, str | None] = {}


def contact_zone(fields: dict | None, phone: str | None, default: str = "UTC") -> ZoneInfo:
    """The zone a contact's send window is read in."""
    for key, value in (fields or {}).items():
        if isinstance(key, str) and key.lower() == "timezone":
            own = zone(value)
            if own is not None:
                return own
    by_phone = phone_zone(phone) if phone else None
    return by_phone or zone(default) or ZoneInfo("UTC")


def _zone_name_for(phone: str) -> str | None:
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return None
    names = [name for name in phone_timezones.time_zones_for_number(number) if name != UNKNOWN_ZONE]
    return names[0] if names else None


def phone_zone(phone: str) -> ZoneInfo | None:
    """The zone of an E.164 number's country (its area code's, when phonenumbers knows it)."""
    digits = phone.strip()
    if not digits.startswith("+"):
        return None
    prefix = digits[:PREFIX_LENGTH]
    if prefix not in _zone_by_prefix:
        if len(_zone_by_prefix) >= CACHE_LIMIT:
            _zone_by_prefix.clear()
        _zone_by_prefix[prefix] = _zone_name_for(digits)
    name = _zone_by_prefix[prefix]
    return zone(name) if name else None
