"""Edge conditions (`when`): a registry keyed by the JSON name.

Each condition class knows the node types that allow it, checks its own JSON
(`problems`), compiles it once (`compile`) and says whether it holds for a
`Context` (the reply, the variables, or the outcome of a send or call).
`fallback` never holds by itself: the node type takes it when nothing else
held, wherever it stands.

Replies. `keywords` match whole words or phrases after `normalize_words`:
case folded, NFKD-decomposed with combining marks dropped (`SÍM` -> `sim`,
`não` -> `nao`), punctuation and spaces collapsed to single spaces, symbols
such as emoji kept as words of their own. `payload` is an exact comparison.

Regular expressions (the `regex` condition and the `regex` op) cannot hang a
worker, by two rules:
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

Variable conditions (`branch` edges and `audience.where`): `op` is one of
`OPS`. When both sides parse as numbers they compare as numbers; otherwise
as text, ignoring case (`to_text` of the value, so `true` equals True).
`contains` on a list holds when an element equals the value; on text it is a
substring test. A missing variable (absent or null) satisfies only `ne`;
`exists` needs a value that is neither missing nor the empty string.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from re import _constants as sre_constants
from re import _parser as sre_parser
from typing import Any, ClassVar

from .placeholders import lookup, to_text

REPLY_LIMIT = 1600
REGEX_BUDGET = 2e7
REGEX_MIN_INPUT = 16
OPS = ("eq", "ne", "contains", "gt", "gte", "lt", "lte", "exists", "regex")
REPLY_CONDITIONS = frozenset({"keywords", "regex", "payload"})


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


# --- regular expressions -------------------------------------------------

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


# --- variable comparisons ------------------------------------------------

_NUMBER_RE = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)


def as_number(value: Any) -> Decimal | None:
    """The number a value means, or None (bools and non-numeric text are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(value) if math.isfinite(value) else None
    if isinstance(value, str) and len(value) < 100 and _NUMBER_RE.fullmatch(value):
        return Decimal(value.strip())
    return None


def _equal(left: Any, right: Any) -> bool:
    left_number, right_number = as_number(left), as_number(right)
    if left_number is not None and right_number is not None:
        return left_number == right_number
    return to_text(left).casefold() == to_text(right).casefold()


def _order(left: Any, right: Any) -> int:
    left_number, right_number = as_number(left), as_number(right)
    if left_number is None or right_number is None:
        left_number, right_number = to_text(left).casefold(), to_text(right).casefold()
    return (left_number > right_number) - (left_number < right_number)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, (list, tuple)):
        return any(_equal(element, item) for element in container)
    if isinstance(container, Mapping):
        return any(_equal(key, item) for key in container)
    return to_text(item).casefold() in to_text(container).casefold()


def compare(value: Any, op: str, expected: Any, regex: SafeRegex | None = None) -> bool:
    """Whether `value <op> expected` holds, with the rules of the module docstring."""
    if op == "exists":
        return value is not None and value != ""
    if value is None:
        return op == "ne"
    if op == "eq":
        return _equal(value, expected)
    if op == "ne":
        return not _equal(value, expected)
    if op == "contains":
        return _contains(value, expected)
    if op == "regex":
        return regex is not None and regex.search(to_text(value))
    order = _order(value, expected)
    return {"gt": order > 0, "gte": order >= 0, "lt": order < 0, "lte": order <= 0}[op]


# --- the registry --------------------------------------------------------


class Condition:
    """Base of every condition; subclasses set `name` and `node_types`."""

    name: ClassVar[str]
    node_types: ClassVar[frozenset[str]]
    bare: ClassVar[bool] = True  # written as a plain string, e.g. "fallback"

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


class Always(Condition):
    name = "always"
    node_types = frozenset({"audience", "message", "api", "delay", "split", "branch", "set"})

    def holds(self, context: Context) -> bool:
        return True


class Fallback(Condition):
    name = "fallback"
    node_types = frozenset({"wait", "branch"})

    def holds(self, context: Context) -> bool:
        return False


class Timeout(Condition):
    name = "timeout"
    node_types = frozenset({"wait"})

    def holds(self, context: Context) -> bool:
        return context.timed_out


class Success(Condition):
    name = "success"
    node_types = frozenset({"message", "api"})

    def holds(self, context: Context) -> bool:
        return context.ok is True


class Failure(Condition):
    name = "failure"
    node_types = frozenset({"message", "api"})

    def holds(self, context: Context) -> bool:
        return context.ok is False


class Keywords(Condition):
    name = "keywords"
    node_types = frozenset({"wait"})
    bare = False

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


class Regex(Condition):
    name = "regex"
    node_types = frozenset({"wait"})
    bare = False

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


class Payload(Condition):
    name = "payload"
    node_types = frozenset({"wait"})
    bare = False

    def __init__(self, payload: str):
        self.payload = payload

    @classmethod
    def problems(cls, when: Any) -> list[str]:
        payload = when.get("payload")
        return [] if isinstance(payload, str) and payload else ["payload must be non-empty text"]

    @classmethod
    def compile(cls, when: Any) -> Condition:
        return cls(when["payload"])

    def holds(self, context: Context) -> bool:
        return context.payload == self.payload


class Var(Condition):
    name = "var"
    node_types = frozenset({"branch"})
    bare = False
    keys = frozenset({"var", "op", "value"})

    def __init__(self, var: str, op: str, value: Any, regex: SafeRegex | None):
        self.var, self.op, self.value, self.regex = var, op, value, regex

    @classmethod
    def problems(cls, when: Any) -> list[str]:
        problems = []
        var, op = when.get("var"), when.get("op")
        if not isinstance(var, str) or not var.strip() or any(not part.strip() for part in var.split(".")):
            problems.append(f"var must be a variable name or dotted path, not {var!r}")
        if "op" not in when:
            problems.append(f"op is missing (use one of {', '.join(OPS)})")
        elif op not in OPS:
            problems.append(f"op {op!r} does not exist (use one of {', '.join(OPS)})")
        elif op != "exists":
            value = when.get("value")
            if value is None or isinstance(value, (dict, list)):
                problems.append(f"op {op!r} needs a text or number value")
            elif op == "regex":
                try:
                    compile_regex(value)
                except ValueError as error:
                    problems.append(f"regex {value!r}: {error}")
        extra = sorted(key for key in when if key not in cls.keys)
        if extra:
            problems.append(f"unknown key(s) {', '.join(map(repr, extra))} in a variable condition")
        return problems

    @classmethod
    def compile(cls, when: Any) -> Condition:
        op = when["op"]
        return cls(when["var"].strip(), op, when.get("value"), compile_regex(when["value"]) if op == "regex" else None)

    def holds(self, context: Context) -> bool:
        return compare(lookup(context.scope, self.var), self.op, self.value, self.regex)


CONDITIONS: dict[str, type[Condition]] = {
    condition.name: condition
    for condition in (Always, Keywords, Regex, Payload, Fallback, Timeout, Success, Failure, Var)
}


def condition_name(when: Any) -> str:
    """Which registry entry a `when` value is; ValueError for anything else."""
    if when is None:
        return "always"
    if isinstance(when, str):
        if when in CONDITIONS and CONDITIONS[when].bare:
            return when
        raise ValueError(f"unknown condition {when!r}")
    if isinstance(when, dict):
        if "var" in when:
            return "var"
        names = [key for key in when if key in CONDITIONS and not CONDITIONS[key].bare]
        if len(names) == 1 and len(when) == 1:
            return names[0]
        if len(names) > 1:
            raise ValueError(f"a condition has one of keywords, regex, payload or var, not {' and '.join(names)}")
        raise ValueError(f"unknown condition {when!r}")
    raise ValueError(f"unknown condition {when!r}")


def condition_problems(when: Any) -> list[str]:
    """Plain-words problems of one `when` value, regardless of the node it is on."""
    try:
        name = condition_name(when)
    except ValueError as error:
        return [str(error)]
    return CONDITIONS[name].problems(when)


def compile_condition(when: Any) -> Condition:
    """The compiled condition of a valid `when` value."""
    return CONDITIONS[condition_name(when)].compile(when)
