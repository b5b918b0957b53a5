"""The journey settings panel: sections, each a template and the function that reads its fields.

A new journey-level setting joins by adding a section here (and its template under
`templates/journeys/settings/`): the panel shows every section in one form, and saving
applies every section to the draft.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.journeys.forms import Form


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


SECTIONS: tuple[SettingsSection, ...] = (SettingsSection("general", "journeys/settings/general.html", apply_general),)
