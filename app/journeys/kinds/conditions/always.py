"""Designer half of `always`: no fields."""

from __future__ import annotations

from app.journeys.forms import Form
from app.journeys.kinds.base import ConditionKind


class AlwaysKind(ConditionKind):
    name = "always"
    title = "always"
    blank = "always"

    def from_form(self, form: Form):
        return None

    def label(self, when):
        return ""


CONDITION_KIND = AlwaysKind()
