"""Template filters and globals shared by every page.

Times are rendered as `<time datetime="…Z">` with a UTC fallback text;
`static/time.js` rewrites them in the operator's browser time zone (zone
named) and keeps relative ones fresh. Relative times keep two units and
round down within the smaller one ("in 1 h 59 min", never "in 1 h").
"""

from datetime import datetime

from flask import Flask, current_app
from markupsafe import Markup, escape

from app.models import utcnow

UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
TIME_FORMATS = {"relative", "datetime", "clock", "date"}


def span_text(seconds: float) -> str:
    """'1 h 59 min', '3 d 4 h', '5 min 12 s', '42 s': the largest unit and the next one when not zero."""
    seconds = int(abs(seconds))
    for index, (unit, size) in enumerate(UNITS):
        if seconds >= size or unit == "s":
            text = f"{seconds // size} {unit}"
            if unit != "s":
                smaller, smaller_size = UNITS[index + 1]
                rest = (seconds % size) // smaller_size
                if rest:
                    text += f" {rest} {smaller}"
            return text
    return "0 s"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """'3 min ago' / 'in 1 h 59 min' for a naive-UTC time (plain text: fine inside attributes)."""
    if moment is None:
        return "—"
    seconds = ((now or utcnow()) - moment).total_seconds()
    if abs(seconds) < 1:
        return "just now"
    text = span_text(seconds)
    return f"{text} ago" if seconds > 0 else f"in {text}"


def utc(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def time_tag(moment: datetime | None, kind: str = "relative") -> Markup:
    """A `<time>` the browser shows in its own zone: `relative`, `datetime`, `clock` (HH:MM) or `date`."""
    if moment is None:
        return Markup("—")
    kind = kind if kind in TIME_FORMATS else "relative"
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    fallback = {
        "relative": ago(moment),
        "datetime": utc(moment),
        "clock": moment.strftime("%H:%M UTC"),
        "date": moment.strftime("%Y-%m-%d"),
    }[kind]
    return Markup('<time datetime="{}" data-format="{}" title="{}">{}</time>').format(
        stamp, kind, utc(moment), escape(fallback)
    )


def plural(count: int | None, singular: str, plural_form: str | None = None) -> str:
    """'1 contact', '1,204 contacts' (an irregular plural as the second argument)."""
    count = count or 0
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {word}"


def duration(seconds: float | None) -> str:
    """A number of seconds as operators read it, rounded to the second: "45 s", "12 min 30 s", "2 h 10 min"."""
    return "" if seconds is None else span_text(round(seconds))


def register(app: Flask) -> None:
    app.jinja_env.filters["ago"] = ago
    app.jinja_env.filters["utc"] = utc
    app.jinja_env.filters["time"] = time_tag
    app.jinja_env.filters["plural"] = plural
    app.jinja_env.filters["duration"] = duration

    @app.context_processor
    def _globals():
        return {"dry_run": current_app.config["DRY_RUN"]}
