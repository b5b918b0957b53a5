"""`keywords`: a reply holding one of the words or phrases (see `base.normalize_words`)."""

from __future__ import annotations

from typing import Any

from .base import Condition, Context, normalize_words


class Keywords(Condition):
    name = "keywords"
    order = 20
    bare = False
    reply = True

    def __init__(self, keywords: tuple[str, ...]):
        self.keywords = keywords
        self._padded = tuple(f" {keyword} " for keyword in keywords)

    @classmethod
    def problems(cls, when: Any) -> list[str]:
        keywords = when.get("keywords")
        if not isinstance(keywords, list) or not keywords:
            return ["keywords must be a non-empty list of words or phrases"]
        return [
            f"keyword {keyword!r} has no letters or digits to match"
            if isinstance(keyword, str)
            else f"keyword {keyword!r} is not text"
            for keyword in keywords
            if not isinstance(keyword, str) or not normalize_words(keyword)
        ]

    @classmethod
    def compile(cls, when: Any) -> Condition:
        return cls(tuple(dict.fromkeys(normalize_words(keyword) for keyword in when["keywords"])))

    def holds(self, context: Context) -> bool:
        if context.reply is None:
            return False
        words = context.padded_words
        return any(keyword in words for keyword in self._padded)


CONDITION = Keywords
