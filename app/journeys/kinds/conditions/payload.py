"""Designer half of `payload`: the payload of a WhatsApp button."""

from __future__ import annotations

from app.journeys.forms import Form
from app.journeys.kinds.base import ConditionKind


class PayloadKind(ConditionKind):
    name = "payload"
    title = "button payload"
    blank = {"payload": ""}

    def from_form(self, form: Form):
        return {"payload": form.get("payload", "").strip()}

    def label(self, when):
        return f"button {when.get('payload')}"


CONDITION_KIND = PayloadKind()
