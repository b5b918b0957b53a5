"""Templates (`<<name>>`) and the SMS helpers the editor and bulk campaigns share.

A placeholder is `<<` + text without `<` or `>` + `>>`, split at the first `|`
into a *path* and an optional *default*; both are stripped of surrounding
spaces, so `<< name | friend >>` reads the path `name` with default `friend`.
`<<>>` (empty path) is not a placeholder. `{{name}}`, the predecessor's
spelling, is read exactly like `<<name>>` (`spellings` says which a text uses;
nothing is rewritten, so export keeps what the author wrote). Everything else, including a lone
`<<` or `>>`, is left exactly as written by `render`; `template_problems` is what
refuses such text at validation.

Lookup: the first path segment names a variable, matched exactly, then
case-insensitively (contact fields come from CSV headers written any which
way). Later segments index dicts by exact key and lists by a non-negative
integer (so a variable whose own name holds a dot cannot be reached). A
value that is absent or `None` is *missing*; a default replaces a missing
value and an empty string. Missing placeholders without a default render as
"" and are reported in `Rendered.missing` (unique, in order of first
appearance).

Values render as text: strings as is, `True`/`False` as `true`/`false`, ints
as ints, floats without a useless `.0` (`10.0` -> `10`, `2.5` -> `2.5`),
dicts and lists as compact JSON.

SMS: `sms_info` picks GSM-7 when every character is in the GSM 03.38 basic set
or its extension table, else UCS-2. `characters` counts the units a message is
billed in: septets for GSM-7 (an extension character such as `€` or `{` counts
2), UTF-16 code units for UCS-2 (most emoji count 2). One segment holds 160
septets / 70 units; a longer message is split in segments of 153 / 67, never
splitting an escape pair or a surrogate pair. Empty text is 0 segments: there
is nothing to send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import quote

PLACEHOLDER_RE = re.compile(r"<<([^<>]*)>>|\{\{([^{}]*)\}\}")
ANGLE, BRACES = "<<name>>", "{{name}}"


def _inner(match: re.Match) -> str:
    """The text between the delimiters, whichever spelling matched."""
    return match.group(1) if match.group(1) is not None else match.group(2)


def spellings(text: str) -> tuple[str, ...]:
    """Which placeholder spellings `text` uses (`ANGLE`, `BRACES`), in that order."""
    found = {ANGLE if match.group(1) is not None else BRACES for match in PLACEHOLDER_RE.finditer(text)}
    return tuple(spelling for spelling in (ANGLE, BRACES) if spelling in found)


class Placeholder(NamedTuple):
    """One `<<path|default>>` occurrence; `default` is None when there is no `|`."""

    path: str
    default: str | None


class Rendered(NamedTuple):
    """The rendered text and the paths that had no value and no default."""

    text: str
    missing: tuple[str, ...]


class SmsInfo(NamedTuple):
    """Encoding (`GSM-7` or `UCS-2`), billed units and segment count of a text."""

    encoding: str
    characters: int
    segments: int


_MISSING = object()


def _split(inner: str) -> Placeholder | None:
    path, bar, default = inner.partition("|")
    path = path.strip()
    if not path:
        return None
    return Placeholder(path, default.strip() if bar else None)


def placeholders(text: str) -> list[Placeholder]:
    """All placeholders of `text`, in order, repeats included."""
    found = []
    for match in PLACEHOLDER_RE.finditer(text):
        placeholder = _split(_inner(match))
        if placeholder is not None:
            found.append(placeholder)
    return found


def lookup(variables: Mapping, path: str) -> Any:
    """The value at a dotted `path`, or None when any step of it is missing."""
    first, *rest = path.split(".")
    value = _lookup_name(variables, first.strip())
    for segment in rest:
        segment = segment.strip()
        if isinstance(value, Mapping):
            value = value.get(segment, _MISSING)
        elif isinstance(value, (list, tuple)) and segment.isdecimal() and segment.isascii():
            index = int(segment)
            value = value[index] if index < len(value) else _MISSING
        else:
            return None
        if value is _MISSING:
            return None
    return None if value is _MISSING else value


def _lookup_name(variables: Mapping, name: str) -> Any:
    value = variables.get(name, _MISSING)
    if value is not _MISSING:
        return value
    folded = name.casefold()
    value = variables.get(folded, _MISSING)
    if value is not _MISSING:
        return value
    for key, candidate in variables.items():
        if isinstance(key, str) and key.casefold() == folded:
            return candidate
    return _MISSING


def scope(*layers: Mapping) -> dict:
    """Merge variable layers into one dict keyed case-insensitively; later layers win.

    Rendering against a scope finds every name on its first or second probe.
    """
    merged: dict = {}
    for layer in layers:
        for key, value in layer.items():
            merged[key.casefold() if isinstance(key, str) else key] = value
    return merged


def to_text(value: Any) -> str:
    """How a variable value reads inside a message."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, (Mapping, list, tuple)):
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def render(text: str, variables: Mapping, quote_from: int | None = None) -> Rendered:
    """Replace every placeholder of `text` with its value from `variables`.

    Placeholders starting at or after index `quote_from` are percent-encoded (a URL's path and query).
    """
    if "<<" not in text and "{{" not in text:
        return Rendered(text, ())
    missing: dict[str, None] = {}

    def replace(match: re.Match) -> str:
        placeholder = _split(_inner(match))
        if placeholder is None:
            return match.group(0)
        value = lookup(variables, placeholder.path)
        rendered = "" if value is None else to_text(value)
        if rendered == "" and placeholder.default is not None:
            rendered = placeholder.default
        elif value is None:
            missing.setdefault(placeholder.path, None)
        if quote_from is not None and match.start() >= quote_from:
            return quote(rendered, safe="")
        return rendered

    return Rendered(PLACEHOLDER_RE.sub(replace, text), tuple(missing))


def render_url(text: str, variables: Mapping) -> Rendered:
    """Render a URL template: values placed in the path, query or fragment are percent-encoded, so a
    contact's data cannot add path segments, parameters or another host; a leading placeholder (a base
    URL held in a variable) is kept as is."""
    scheme_end = text.find("://")
    if scheme_end >= 0:
        start = scheme_end + 3
        ends = [index for index in (text.find(mark, start) for mark in "/?#") if index >= 0]
        quote_from = min(ends) if ends else len(text)
    else:
        first = PLACEHOLDER_RE.search(text)
        quote_from = first.end() if first else 0
    return render(text, variables, quote_from)


def template_problems(text: str) -> list[str]:
    """What is wrong with a template, in plain words; empty when it is fine."""
    problems = []
    for match in PLACEHOLDER_RE.finditer(text):
        placeholder = _split(_inner(match))
        if placeholder is None:
            problems.append(f"empty placeholder {match.group(0)!r}")
        elif any(not segment.strip() for segment in placeholder.path.split(".")):
            problems.append(f"placeholder <<{placeholder.path}>> has an empty path segment")
    rest = PLACEHOLDER_RE.sub("", text)
    if "<<" in rest:
        problems.append("'<<' without a matching '>>'")
    if ">>" in rest:
        problems.append("'>>' without a matching '<<'")
    return problems


GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


def _units(text: str) -> tuple[str, list[int]]:
    if all(char in GSM_BASIC or char in GSM_EXTENSION for char in text):
        return "GSM-7", [2 if char in GSM_EXTENSION else 1 for char in text]
    return "UCS-2", [2 if ord(char) > 0xFFFF else 1 for char in text]


def sms_info(text: str) -> SmsInfo:
    """Encoding, billed units and number of segments of an SMS body."""
    encoding, units = _units(text)
    total = sum(units)
    single, multi = (160, 153) if encoding == "GSM-7" else (70, 67)
    if total == 0:
        return SmsInfo(encoding, 0, 0)
    if total <= single:
        return SmsInfo(encoding, total, 1)
    segments, used = 1, 0
    for size in units:
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return SmsInfo(encoding, total, segments)
