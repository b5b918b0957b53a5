"""Designer half of `regex`: a pattern, with a box to try it on a reply."""

from __future__ import annotations

from app.journeys.forms import Form
from app.journeys.kinds.base import ConditionKind


class RegexKind(ConditionKind):
    name = "regex"
    title = "pattern (regex)"
    blank = {"regex": ""}

    def from_form(self, form: Form):
        return {"regex": form.get("regex", "")}

    def label(self, when):
        return f"/{when.get('regex')}/"


CONDITION_KIND = RegexKind()
