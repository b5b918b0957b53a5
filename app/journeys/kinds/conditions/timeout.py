"""Designer half of `timeout`: no fields."""

from __future__ import annotations

from app.journeys.forms import Form
from app.journeys.kinds.base import ConditionKind


class TimeoutKind(ConditionKind):
    name = "timeout"
    title = "timeout"
    blank = "timeout"

    def from_form(self, form: Form):
        return self.name

    def label(self, when):
        return "timeout"


CONDITION_KIND = TimeoutKind()
