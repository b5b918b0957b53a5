"""Send windows (quiet hours): when a message may go out in a contact's local time.

Pure logic, stdlib only (`zoneinfo`). A window is `{"start": "09:00", "end":
"20:00", "days"?: ["mon", …], "timezone"?: "contact" | IANA name}`; `end`
before `start` spans midnight, and `days` names the day a window *opens*
(a Friday 22:00-06:00 window runs into Saturday morning). Times are wall-clock
times: a window opening at a time a DST change skips opens when the clocks
jump past it; one opening at a repeated time opens at its first occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CONTACT = "contact"
TIME_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)\Z")
ONE_MINUTE = timedelta(minutes=1)
MAX_GAP_MINUTES = 180  # the longest DST gap searched back through (real ones are 30 min to 2 h)


@dataclass(frozen=True)
class SendWindow:
    """A parsed send window; `days` are weekday numbers (Monday 0) on which it opens."""

    start: time
    end: time
    days: frozenset[int]
    timezone: str = CONTACT

    @property
    def spans_midnight(self) -> bool:
        return self.end <= self.start

    def to_json(self) -> dict:
        data = {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M")}
        if self.days != frozenset(range(7)):
            data["days"] = [DAYS[day] for day in sorted(self.days)]
        if self.timezone != CONTACT:
            data["timezone"] = self.timezone
        return data


def zone(name) -> ZoneInfo | None:
    """The IANA zone of that name, or None when it is not one."""
    if not isinstance(name, str) or not name.strip() or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def window_problems(value, field: str = "send_window") -> list[tuple[str, str]]:
    """Every problem of a send window value as (field, message); empty means `parse_window` accepts it."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [(field, f'{field} must be an object like {{"start": "09:00", "end": "20:00"}}')]
    problems = []
    for key in ("start", "end"):
        text = value.get(key)
        if not isinstance(text, str) or not TIME_RE.match(text):
            problems.append((f"{field}.{key}", f"{field}.{key} must be a time HH:MM (00:00 to 23:59), not {text!r}"))
    if not problems and value["start"] == value["end"]:
        problems.append((f"{field}.end", f"{field}.end must differ from start (a window always open needs none)"))
    days = value.get("days")
    if days is not None:
        if not isinstance(days, list) or not days:
            problems.append((f"{field}.days", f"{field}.days must be a non-empty list of {', '.join(DAYS)}"))
        else:
            unknown = [day for day in days if not isinstance(day, str) or day.lower() not in DAYS]
            if unknown:
                problems.append(
                    (f"{field}.days", f"{field}.days has {unknown[0]!r}, which is not one of {', '.join(DAYS)}")
                )
    tz = value.get("timezone")
    if tz is not None and tz != CONTACT and zone(tz) is None:
        problems.append((f"{field}.timezone", f'{field}.timezone must be "contact" or an IANA name, not {tz!r}'))
    return problems


def parse_window(value) -> SendWindow | None:
    """The `SendWindow` of a valid value (None for none); ValueError names the field at fault."""
    if value is None:
        return None
    problems = window_problems(value)
    if problems:
        raise ValueError(problems[0][1])
    days = value.get("days")
    return SendWindow(
        start=time.fromisoformat(value["start"]),
        end=time.fromisoformat(value["end"]),
        days=frozenset(DAYS.index(day.lower()) for day in days) if days else frozenset(range(7)),
        timezone=value.get("timezone") or CONTACT,
    )


def is_open(window: SendWindow, moment: datetime, tz: ZoneInfo) -> bool:
    """Whether the window is open at `moment` (aware, or naive UTC) in zone `tz`."""
    local = _aware(moment).astimezone(tz)
    clock, day = local.time().replace(tzinfo=None), local.weekday()
    if not window.spans_midnight:
        return day in window.days and window.start <= clock < window.end
    return (day in window.days and clock >= window.start) or ((day - 1) % 7 in window.days and clock < window.end)


def next_opening(window: SendWindow, moment: datetime, tz: ZoneInfo) -> datetime:
    """The first instant at or after `moment` when the window is open, as naive UTC (`moment` if open now)."""
    moment = _aware(moment)
    if is_open(window, moment, tz):
        return _naive_utc(moment)
    local_date = moment.astimezone(tz).date()
    for offset in range(9):
        day = local_date + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        opening = datetime.combine(day, window.start, tzinfo=tz).astimezone(UTC)
        if opening <= moment:
            continue
        return _naive_utc(_start_of_gap(window, opening, tz))
    raise AssertionError("a window with at least one day opens within a week")  # pragma: no cover


def closing_after(window: SendWindow, moment: datetime, tz: ZoneInfo) -> datetime:
    """When the open period containing `moment` (an open instant) ends, as naive UTC."""
    local = _aware(moment).astimezone(tz)
    day = local.date()
    if window.spans_midnight and local.time().replace(tzinfo=None) >= window.start:
        day += timedelta(days=1)
    return _naive_utc(datetime.combine(day, window.end, tzinfo=tz))


def _start_of_gap(window: SendWindow, opening: datetime, tz: ZoneInfo) -> datetime:
    """A start time skipped by a DST jump: the window opened when the clocks jumped, a little earlier."""
    local = opening.astimezone(tz)
    if local.time().replace(tzinfo=None) == window.start:
        return opening
    for _ in range(MAX_GAP_MINUTES):
        if not is_open(window, opening - ONE_MINUTE, tz):
            break
        opening -= ONE_MINUTE
    return opening


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)
