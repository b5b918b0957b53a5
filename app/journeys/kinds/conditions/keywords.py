"""Designer half of `keywords`: a tag list; typing `yes, sim` adds two, each tag's × removes it."""

from __future__ import annotations

from app.journeys.forms import Form
from app.journeys.kinds.base import ConditionKind


class KeywordsKind(ConditionKind):
    name = "keywords"
    title = "keywords"
    blank = {"keywords": []}

    def from_form(self, form: Form):
        keywords = [word for word in form.getlist("keywords") if word.strip()]
        removed = form.get("remove_keyword")
        if removed is not None:
            keywords = [word for word in keywords if word != removed]
        for word in form.get("new_keyword", "").split(","):
            if word.strip() and word.strip() not in keywords:
                keywords.append(word.strip())
        return {"keywords": keywords}

    def label(self, when):
        keywords = when.get("keywords")
        return ", ".join(str(word) for word in keywords) if isinstance(keywords, list) else str(keywords)


CONDITION_KIND = KeywordsKind()
