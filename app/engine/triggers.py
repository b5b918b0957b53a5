"""Keyword triggers (`triggers` in journey/v1): which inbound text starts a journey.

A trigger is `{"keywords": [...], "channel"?: "sms" | "whatsapp"}`; without a
channel it listens on the journey's default channel. An inbound message
matches when its text, normalised like keyword conditions (case, accents and
punctuation ignored), starts with one of the keywords as whole words: `JOIN`,
`join!` and `Join pizza club` all match `join`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .conditions.base import normalize_words

CHANNELS = ("sms", "whatsapp")


def trigger_problems(triggers: Any) -> list[tuple[str, str]]:
    """(field, message) for everything wrong with a `triggers` value; empty when it is fine."""
    if triggers is None:
        return []
    if not isinstance(triggers, list):
        return [("triggers", 'triggers must be a list of {"keywords": [...]} objects')]
    problems = []
    for index, trigger in enumerate(triggers):
        field = f"triggers[{index}]"
        if not isinstance(trigger, dict):
            problems.append((field, f"{field} must be an object with keywords"))
            continue
        keywords = trigger.get("keywords")
        if not isinstance(keywords, list) or not keywords:
            problems.append((f"{field}.keywords", f"{field}.keywords must be a non-empty list of words"))
        else:
            problems += [
                (f"{field}.keywords", f"{field}: keyword {keyword!r} has no letters or digits to match")
                for keyword in keywords
                if not isinstance(keyword, str) or not normalize_words(keyword)
            ]
        if "channel" in trigger and trigger["channel"] not in CHANNELS:
            problems.append((f"{field}.channel", f"{field}.channel must be one of {', '.join(CHANNELS)}"))
    return problems


def keywords_by_channel(doc: Mapping) -> dict[str, tuple[str, ...]]:
    """Normalised keywords per channel of a valid definition's triggers (no entry: no trigger there)."""
    default = doc.get("channel") or "sms"
    found: dict[str, dict[str, None]] = {}
    for trigger in doc.get("triggers") or ():
        words = found.setdefault(trigger.get("channel") or default, {})
        for keyword in trigger.get("keywords") or ():
            words.setdefault(normalize_words(keyword), None)
    return {channel: tuple(words) for channel, words in found.items() if words}


def matching_keyword(text: str, keywords: Iterable[str]) -> str | None:
    """The keyword `text` starts with (as whole words), or None."""
    words = normalize_words(text or "")
    if not words:
        return None
    for keyword in keywords:
        if words == keyword or words.startswith(keyword + " "):
            return keyword
    return None
