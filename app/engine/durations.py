"""Durations of `delay.duration` and `wait.timeout`: whole seconds, or "90s", "10m", "2h", "1d"."""

from __future__ import annotations

import re

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 366 * 86400
_DURATION_RE = re.compile(r"\s*([+-]?\d+)\s*([smhd]?)\s*", re.ASCII)


def parse_duration(value: object) -> int:
    """Seconds in `value`; raises ValueError with a plain-words reason.

    A bare number string ("90") is read as seconds. Durations above 366 days
    are refused: they are typos, and they overflow the shell's timers.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if match is None:
            raise ValueError(f'{value!r} is not a duration (write e.g. 90, "90s", "10m", "2h" or "1d")')
        seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2) or "s"]
    else:
        raise ValueError(f'{value!r} is not a duration (write e.g. 90, "90s", "10m", "2h" or "1d")')
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be more than zero")
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration {value!r} is longer than 366 days")
    return seconds
