"""Designer half of `success`: no fields."""

from __future__ import annotations

from app.journeys.forms import Form
from app.journeys.kinds.base import ConditionKind


class SuccessKind(ConditionKind):
    name = "success"
    title = "success"
    blank = "success"

    def from_form(self, form: Form):
        return self.name

    def label(self, when):
        return "success"


CONDITION_KIND = SuccessKind()
