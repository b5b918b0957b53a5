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


def register(app: Flask) -> None:
    app.jinja_env.filters["ago"] = ago
    app.jinja_env.filters["utc"] = utc

    @app.context_processor
    def _globals():
        return {"dry_run": current_app.config["DRY_RUN"]}
