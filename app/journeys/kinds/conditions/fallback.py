"""Designer half of `fallback`: no fields."""

from __future__ import annotations

from app.journeys.forms import Form
from app.journeys.kinds.base import ConditionKind


class FallbackKind(ConditionKind):
    name = "fallback"
    title = "else (fallback)"
    blank = "fallback"

    def from_form(self, form: Form):
        return self.name

    def label(self, when):
        return "else"


CONDITION_KIND = FallbackKind()
