"""`regex`: a reply matching a pattern, searched without case under the rules of `safe_regex`."""

from __future__ import annotations

from typing import Any

from .base import Condition, Context
from .safe_regex import SafeRegex, compile_regex


class Regex(Condition):
    name = "regex"
    order = 30
    bare = False
    reply = True

    def __init__(self, regex: SafeRegex):
        self.regex = regex

    @classmethod
    def problems(cls, when: Any) -> list[str]:
        try:
            compile_regex(when.get("regex"))
        except ValueError as error:
            return [f"regex {when.get('regex')!r}: {error}"]
        return []

    @classmethod
    def compile(cls, when: Any) -> Condition:
        return cls(compile_regex(when["regex"]))

    def holds(self, context: Context) -> bool:
        return context.reply is not None and self.regex.search(context.reply)


CONDITION = Regex
