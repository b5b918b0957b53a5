"""The journey settings panel: sections, each a template and the function that reads its fields.

A new journey-level setting joins by adding a section here (and its template under
`templates/journeys/settings/`): the panel shows every section in one form, and saving
applies every section to the draft.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.journeys.forms import Form
from app.journeys.send_window_settings import apply_send_window


@dataclass(frozen=True)
class SettingsSection:
    name: str
    template: str
    apply: Callable[[dict, Form], None]


def apply_general(doc: dict, form: Form) -> None:
    """Name, description and the default channel of message nodes."""
    doc["name"] = form.get("name", "").strip()
    description = form.get("description", "").strip()
    if description:
        doc["description"] = description
    else:
        doc.pop("description", None)
    doc["channel"] = form.get("channel") or "sms"


def apply_triggers(doc: dict, form: Form) -> None:
    """Keyword triggers, one comma-separated list per channel; other trigger keys a file brought are kept."""
    kept = {trigger.get("channel") or doc.get("channel") or "sms": trigger for trigger in doc.get("triggers") or []}
    triggers = []
    for channel in ("sms", "whatsapp"):
        keywords = [word.strip() for word in form.get(f"trigger_{channel}", "").split(",") if word.strip()]
        if keywords:
            trigger = {key: value for key, value in kept.get(channel, {}).items() if key != "keywords"}
            triggers.append({**trigger, "keywords": keywords, "channel": channel})
    if triggers:
        doc["triggers"] = triggers
    else:
        doc.pop("triggers", None)


def trigger_keywords(doc: dict, channel: str) -> str:
    """The settings form's text for one channel's trigger keywords."""
    default = doc.get("channel") or "sms"
    words = [
        word
        for trigger in doc.get("triggers") or []
        if isinstance(trigger, dict) and (trigger.get("channel") or default) == channel
        for word in trigger.get("keywords") or []
    ]
    return ", ".join(str(word) for word in words)


SECTIONS: tuple[SettingsSection, ...] = (
    SettingsSection("general", "journeys/settings/general.html", apply_general),
    SettingsSection("triggers", "journeys/settings/triggers.html", apply_triggers),
    SettingsSection("send_window", "journeys/settings/send_window.html", apply_send_window),
)
