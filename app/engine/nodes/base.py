"""What every node type shares: the `NodeType` base and the helpers node modules use.

A node type knows its keys (`keys`, `check`), its outgoing-edge rules
(`conditions` it allows, `check_edges`), the templates it holds (`templates`,
for validation and lint), the variables it stores (`stored_variables`, for
lint and the results export), its own lint warnings (`lint`), and how a
contact moves through it:

- `enter(walk, node)` runs when a contact arrives. It returns the edge to
  follow next, or None when the contact stops here (waiting for the outside
  world, or finished).
- `resume(walk, node, event)` runs when the event in `resumes_on` arrives
  while the contact has the status it maps to; it returns the edge to follow
  or None.

`walk` is the stepping engine's working state (`stepping.Walk`): it gives
the variables in scope, records effects and trail entries, and finishes the
contact. A node with no edge to follow finishes the contact as `completed`,
except that a failed send or call with no `failure` edge finishes it `failed`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from ..conditions import Context
from ..durations import parse_duration
from ..placeholders import render, render_url
from ..problems import Problem, never_taken

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
RESERVED_NAMES = frozenset({"reply", "payload"})
CHANNELS = ("sms", "whatsapp")


def a_or_an(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def variable_name_problem(name: Any, what: str) -> str | None:
    """Why `name` cannot name a journey variable, or None."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        return f"{what} {name!r} must start with a letter or _ and hold only letters, digits and _ (at most 64)"
    if name.casefold() in RESERVED_NAMES:
        return f"{what} {name!r} is reserved: the engine sets it from the contact's reply"
    return None


def first_edge(edges, context: Context, allowed=None, fallback: bool = False):
    """The first edge whose condition holds, else the first fallback (when `fallback`), else None."""
    chosen_fallback = None
    for edge in edges:
        if edge.when == "fallback":
            if fallback and chosen_fallback is None:
                chosen_fallback = edge
        elif (allowed is None or edge.when in allowed) and edge.condition.holds(context):
            return edge
    return chosen_fallback


def render_url_value(template: str, scope: Mapping, missing: dict) -> str:
    """Render a URL template, percent-encoding the values placed in its path and query."""
    rendered = render_url(template, scope)
    missing.update(dict.fromkeys(rendered.missing))
    return rendered.text


def render_value(value: Any, scope: Mapping, missing: dict) -> Any:
    """Render every string inside a JSON value (API bodies); other values stay as they are."""
    if isinstance(value, str):
        rendered = render(value, scope)
        missing.update(dict.fromkeys(rendered.missing))
        return rendered.text
    if isinstance(value, Mapping):
        return {key: render_value(item, scope, missing) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [render_value(item, scope, missing) for item in value]
    return value


def json_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) of every string inside a JSON value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from json_strings(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from json_strings(item, f"{path}.{index}")


def template_map(data: Mapping, key: str) -> list[tuple[str, str]]:
    """(field, text) of an object of text templates such as `vars` or `headers`."""
    value = data.get(key)
    if not isinstance(value, Mapping):
        return []
    return [(f"{key}.{name}", text) for name, text in value.items() if isinstance(text, str)]


def duration_problem(data: dict, key: str, required: bool) -> list[tuple[str, str]]:
    if key not in data:
        return [(key, f"{key} is missing")] if required else []
    try:
        parse_duration(data[key])
    except ValueError as error:
        return [(key, f"{key}: {error}")]
    return []


def never_taken_by_outcome(edges, outcomes: Mapping[str, set]) -> list[Problem]:
    """Edges of a send or a call that earlier edges already cover; `outcomes`: condition -> outcomes it takes."""
    warnings = []
    covered: set = set()
    for edge in edges:
        taken = outcomes[edge.when]
        if taken <= covered:
            described = " and ".join(
                "success" if outcome == "ok" else "failure" for outcome in sorted(taken, reverse=True)
            )
            warnings.append(never_taken(edge, f"earlier edges of the node already cover {described}"))
        covered |= taken
    return warnings


class NodeType:
    """Base of every node type; subclasses set `name`, `title`, `order` and override what differs."""

    name: ClassVar[str]
    title: ClassVar[str]  # what the node does, in a few words (designer, docs)
    order: ClassVar[int]  # place in the registry and the designer's type lists
    keys: ClassVar[tuple[str, ...]] = ()  # the node's own JSON keys, besides id, type, label and position
    defaults: ClassVar[dict] = {}  # the keys of a node just added in the designer
    conditions: ClassVar[frozenset[str]] = frozenset()  # the edge conditions allowed on its edges out
    one_unconditional_edge: ClassVar[bool] = False
    pauses: ClassVar[bool] = False  # a contact stops here for time to pass (a loop through it is no spin)
    finishes: ClassVar[bool] = False  # a contact finishes here (no edges out is no dead end)
    resumes_on: ClassVar[dict[type, str]] = {}

    def check(self, data: dict) -> list[tuple[str, str]]:
        """(field, message) for every problem with the node's own keys."""
        return []

    def check_edges(self, edges: list) -> list[tuple[int | None, str]]:
        """(edge index or None, message) for edge-count problems; `edges` are (index, when name).

        Which conditions an edge may carry is checked before, from `conditions`: the
        "exactly one, unconditional" nodes allow only `always`, so counting is what is left.
        """
        if self.one_unconditional_edge and len(edges) != 1:
            return [(None, f"{a_or_an(self.name)} node needs exactly one edge out, it has {len(edges)}")]
        return []

    def templates(self, data: Mapping) -> list[tuple[str, str]]:
        """(field, template text) of every template the node holds."""
        return []

    def stored_variables(self, data: Mapping) -> list[str]:
        """The journey variables a contact passing here may get (lint, results export)."""
        return []

    def lint(self, journey, node) -> list[Problem]:
        """Warnings about this valid node and its edges out."""
        return []

    def compile(self, data: Mapping) -> dict:
        """Settings worked out once at parse time, kept on `Node.settings`."""
        return {}

    def enter(self, walk, node):
        raise NotImplementedError

    def resume(self, walk, node, event):
        raise NotImplementedError

    def only_edge(self, walk, node):
        edges = walk.journey.outgoing(node.id)
        return edges[0] if edges else walk.no_way_out(node)
