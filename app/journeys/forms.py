"""Reading designer form values into journey/v1 values; `Refused` says in plain words why one cannot be read.

Pure (no Flask): a form is anything with `get(name, default)` and `getlist(name)`, such as a
werkzeug `MultiDict`, so the journey-editing functions are unit-tested with plain MultiDicts.
"""

from __future__ import annotations

import json
from typing import Any, Protocol


class Form(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...

    def getlist(self, key: str) -> list: ...


class Refused(Exception):
    """An edit that cannot be stored at all (a duplicate node id, a line that is no `name = value`…)."""


def pairs(text: str, separator: str) -> dict:
    """`name = value` lines (or `Name: value` for headers) as a dict; blank lines are skipped."""
    found = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, separated, value = line.partition(separator)
        if not separated or not name.strip():
            raise Refused(f"line {number} ({line.strip()!r}): write it as name {separator} value")
        found[name.strip()] = value.strip()
    return found


def json_or_text(text: str) -> Any:
    """An API body: JSON when it parses as an object or a list, else the text as a template."""
    stripped = text.strip()
    if stripped[:1] in "{[":
        try:
            return json.loads(stripped)
        except ValueError as error:
            raise Refused(f"API body looks like JSON but is not valid: {error}") from None
    return text


def number(text: str, what: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise Refused(f"{what} {text!r} is not a number") from None
    return int(value) if value.is_integer() else value


def duration(text: str) -> int | str:
    """A duration as typed: whole seconds as a number, anything else ("2h") as text for the engine to check."""
    text = text.strip()
    return int(text) if text.isdigit() else text
