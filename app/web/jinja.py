"""Template filters and globals shared by every page."""

from datetime import datetime

from flask import Flask, current_app

from app.models import utcnow


def ago(moment: datetime | None) -> str:
    """'3 min ago' / 'in 2 h' for a naive-UTC time."""
    if moment is None:
        return "—"
    seconds = (utcnow() - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)} {unit}"
            break
    else:
        text = f"{int(seconds)} s"
    return f"in {text}" if future else f"{text} ago"


def utc(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def duration(seconds: float | None) -> str:
    """A number of seconds as operators read it: "45 s", "12 min 30 s", "2 h 10 min", "3 d 4 h"."""
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def register(app: Flask) -> None:
    app.jinja_env.filters["ago"] = ago
    app.jinja_env.filters["utc"] = utc
    app.jinja_env.filters["duration"] = duration

    @app.context_processor
    def _globals():
        return {"dry_run": current_app.config["DRY_RUN"]}
