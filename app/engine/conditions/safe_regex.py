"""Regular expressions on replies that cannot hang a worker (the `regex` condition and the `regex` op).

Two rules:
1. Refused at validation: backreferences, and any choice (`*`, `+`, `?`,
   `{m,n}`, `|`) inside a group that is itself repeated, such as `(a+)+`,
   `(a|aa)*` or `(\\w+\\s?)*`: these take exponential time.
2. Bounded evaluation: what is left backtracks at most polynomially, about
   n^k steps for k open-ended repeats on a text of n characters (n^(k+1) if
   the pattern is not anchored with `^`). Each pattern gets the longest input
   length (at most 1,600 characters, the longest SMS) whose estimate stays
   within `REGEX_BUDGET` steps, and text is cut to that length before
   `re.search`. `^\\s*\\d{5}\\s*$` reads 1,600 characters; the unanchored
   `\\d*\\d*\\d*$` reads 66. A pattern that would read fewer than 16 characters
   is refused as too complex.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from re import _constants as sre_constants
from re import _parser as sre_parser

from .base import REPLY_LIMIT

REGEX_BUDGET = 2e7
REGEX_MIN_INPUT = 16

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT}


@dataclass(frozen=True)
class SafeRegex:
    """A compiled pattern and the longest text it may read."""

    pattern: re.Pattern
    input_limit: int

    def search(self, text: str) -> bool:
        return self.pattern.search(text[: self.input_limit]) is not None


class _Shape:
    def __init__(self):
        self.open_ended = 0
        self.factor = 1

    def walk(self, items, in_repeat: bool) -> None:
        for op, arg in items:
            if op in _REPEATS:
                low, high, body = arg
                if high > low:
                    if in_repeat:
                        raise ValueError("a repeated group contains another repeat or optional part")
                    if high == sre_constants.MAXREPEAT:
                        self.open_ended += 1
                    else:
                        self.factor *= high - low + 1
                self.walk(body, in_repeat or high > 1)
            elif op is sre_constants.BRANCH:
                if in_repeat:
                    raise ValueError("a repeated group contains an alternation '|'")
                self.factor *= len(arg[1])
                for branch in arg[1]:
                    self.walk(branch, in_repeat)
            elif op is sre_constants.SUBPATTERN:
                self.walk(arg[-1], in_repeat)
            elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
                self.walk(arg[1], in_repeat)
            elif op is sre_constants.ATOMIC_GROUP:
                self.walk(arg, in_repeat)
            elif op in (sre_constants.GROUPREF, sre_constants.GROUPREF_EXISTS):
                raise ValueError("backreferences are not allowed")


def compile_regex(pattern: str) -> SafeRegex:
    """Compile a reply pattern under the safety rules; ValueError says why not."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("pattern must be non-empty text")
    return _compile_regex(pattern)


@functools.lru_cache(maxsize=1024)
def _compile_regex(pattern: str) -> SafeRegex:
    if len(pattern) > 500:
        raise ValueError("pattern is longer than 500 characters")
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
        parsed = sre_parser.parse(pattern, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError) as error:
        raise ValueError(f"pattern does not compile: {error}") from None
    shape = _Shape()
    shape.walk(parsed, in_repeat=False)
    first = parsed[0] if len(parsed) else (None, None)
    anchored = first[0] is sre_constants.AT and (
        first[1] is sre_constants.AT_BEGINNING_STRING
        or (first[1] is sre_constants.AT_BEGINNING and not parsed.state.flags & re.MULTILINE)
    )
    exponent = shape.open_ended + (0 if anchored else 1)
    limit = REPLY_LIMIT
    if shape.factor > REGEX_BUDGET:
        limit = 0
    elif exponent:
        limit = min(REPLY_LIMIT, math.floor((REGEX_BUDGET / shape.factor) ** (1 / exponent)))
    if limit < REGEX_MIN_INPUT:
        raise ValueError("pattern is too complex (too many repeats or optional parts) to run safely on a reply")
    return SafeRegex(compiled, limit)
