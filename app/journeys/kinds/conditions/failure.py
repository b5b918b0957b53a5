"""Designer half of `failure`: no fields."""

from __future__ import annotations

from app.journeys.forms import Form
from app.journeys.kinds.base import ConditionKind


class FailureKind(ConditionKind):
    name = "failure"
    title = "failure"
    blank = "failure"

    def from_form(self, form: Form):
        return self.name

    def label(self, when):
        return "failure"


CONDITION_KIND = FailureKind()
