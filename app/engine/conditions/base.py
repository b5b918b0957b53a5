"""What every edge condition shares: the `Condition` base, the `Context` it looks at, and word matching.

Keywords match whole words or phrases after `normalize_words`: case folded,
NFKD-decomposed with combining marks dropped (`SÍM` -> `sim`, `não` -> `nao`),
punctuation and spaces collapsed to single spaces, symbols such as emoji kept
as words of their own.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping
from typing import Any, ClassVar

REPLY_LIMIT = 1600


class Context:
    """What a condition may look at while one node picks its edge."""

    def __init__(
        self,
        reply: str | None = None,
        payload: str | None = None,
        scope: Mapping | None = None,
        ok: bool | None = None,
        timed_out: bool = False,
    ):
        self.reply = reply
        self.payload = payload
        self.scope = scope if scope is not None else {}
        self.ok = ok
        self.timed_out = timed_out

    @functools.cached_property
    def padded_words(self) -> str:
        return f" {normalize_words(self.reply[:REPLY_LIMIT])} " if self.reply else " "


@functools.lru_cache(maxsize=8192)
def _word_char(char: str) -> str:
    category = unicodedata.category(char)
    if category[0] == "M" or category == "Cf":
        return ""
    if category[0] in "PZC":
        return " "
    if category[0] == "S":
        return f" {char} "
    return char


def normalize_words(text: str) -> str:
    """Text reduced to what keyword matching compares: see the module docstring."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(map(_word_char, decomposed)).split())


class Condition:
    """Base of every condition; subclasses set `name` and `order` and override what differs.

    A condition checks its own JSON (`problems`), compiles it once (`compile`) and says whether
    it holds for a `Context`. Which node types allow it is said by the node types (`conditions`).
    """

    name: ClassVar[str]
    order: ClassVar[int]  # place in the registry and the designer's lists
    bare: ClassVar[bool] = True  # written as a plain string, e.g. "fallback"
    reply: ClassVar[bool] = False  # matches a contact's reply (a wait tries these when one comes)

    @classmethod
    def problems(cls, when: Any) -> list[str]:
        return []

    @classmethod
    def compile(cls, when: Any) -> Condition:
        return cls()

    def holds(self, context: Context) -> bool:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({vars(self)})"
