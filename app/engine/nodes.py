"""Node types: a registry keyed by the JSON `type`.

Each class knows its keys (`check`), its outgoing-edge rules (`check_edges`;
the conditions an edge may carry come from the condition registry), the
templates it holds (`templates`, for validation and lint), and how a contact
moves through it:

- `enter(run, node)` runs when a contact arrives. It returns the edge to
  follow next, or None when the contact stops here (waiting for the outside
  world, or finished).
- `resume(run, node, event)` runs when the event in `resumes_on` arrives while
  the contact has the status it maps to; it returns the edge to follow or None.

`run` is the stepping engine's working state (see `stepping.Run`): it gives
the variables in scope, records effects and trail entries, and finishes the
contact. A node with no edge to follow finishes the contact as `completed`,
except that a failed send or call with no `failure` edge finishes it `failed`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from . import effects, events
from .conditions import CONDITIONS, REPLY_CONDITIONS, Context, Var
from .durations import parse_duration
from .placeholders import render

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
RESERVED_NAMES = frozenset({"reply", "payload"})
CONTENT_SID_RE = re.compile(r"HX[0-9a-fA-F]{32}\Z")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CHANNELS = ("sms", "whatsapp")
API_TIMEOUT_DEFAULT = 10
API_TIMEOUT_MAX = 30


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


def _json_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _json_strings(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _json_strings(item, f"{path}.{index}")


def _template_map(data: Mapping, key: str) -> list[tuple[str, str]]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        return []
    return [(f"{key}.{name}", text) for name, text in value.items() if isinstance(text, str)]


class NodeType:
    """Base of every node type; subclasses set `name` and override what differs."""

    name: ClassVar[str]
    one_unconditional_edge: ClassVar[bool] = False
    resumes_on: ClassVar[dict[type, str]] = {}

    @property
    def conditions(self) -> frozenset[str]:
        return frozenset(name for name, condition in CONDITIONS.items() if self.name in condition.node_types)

    def check(self, data: dict) -> list[tuple[str, str]]:
        """(field, message) for every problem with the node's own keys."""
        return []

    def check_edges(self, edges: list) -> list[tuple[int | None, str]]:
        """(edge index or None, message) for edge-count problems; `edges` are (index, when name).

        Which conditions an edge may carry is checked before, from the condition registry: the
        "exactly one, unconditional" nodes allow only `always`, so counting is what is left.
        """
        if self.one_unconditional_edge and len(edges) != 1:
            return [(None, f"{a_or_an(self.name)} node needs exactly one edge out, it has {len(edges)}")]
        return []

    def templates(self, data: Mapping) -> list[tuple[str, str]]:
        """(field, template text) of every template the node holds."""
        return []

    def compile(self, data: Mapping) -> dict:
        """Settings worked out once at parse time, kept on `Node.settings`."""
        return {}

    def enter(self, run, node):
        raise NotImplementedError

    def resume(self, run, node, event):
        raise NotImplementedError

    def only_edge(self, run, node):
        edges = run.journey.outgoing(node.id)
        return edges[0] if edges else run.no_way_out(node)


class Audience(NodeType):
    name = "audience"
    one_unconditional_edge = True

    def check(self, data):
        where = data.get("where")
        if where is None:
            return []
        if not isinstance(where, dict) or "var" not in where:
            return [("where", 'where must be a variable condition like {"var": "city", "op": "eq", "value": "Lisbon"}')]
        return [("where", f"where: {problem}") for problem in Var.problems(where)]

    def compile(self, data):
        where = data.get("where")
        return {"where": Var.compile(where) if where is not None else None}

    def enter(self, run, node):
        where = node.settings["where"]
        if where is not None and not where.holds(Context(scope=run.scope())):
            run.finish("filtered", f"contact does not meet the audience condition ({where.var} {where.op})")
            return None
        return self.only_edge(run, node)


class Message(NodeType):
    name = "message"
    resumes_on = {events.MessageOutcome: "sending"}

    def check(self, data):
        problems = []
        if "body" not in data and "content_sid" not in data:
            problems.append(("body", "needs a body (or a WhatsApp content_sid)"))
        body = data.get("body")
        if "body" in data and (not isinstance(body, str) or not body.strip()):
            problems.append(("body", "body must be non-empty text"))
        sid = data.get("content_sid")
        if "content_sid" in data and (not isinstance(sid, str) or not CONTENT_SID_RE.match(sid)):
            problems.append(("content_sid", f"content_sid {sid!r} must be 'HX' followed by 32 hex digits"))
        variables = data.get("content_variables")
        if "content_variables" in data and (
            not isinstance(variables, dict) or not all(isinstance(text, str) for text in variables.values())
        ):
            problems.append(("content_variables", "content_variables must be an object of text templates"))
        if "channel" in data and data["channel"] not in CHANNELS:
            problems.append(("channel", f"channel {data['channel']!r} must be one of {', '.join(CHANNELS)}"))
        if "media_url" in data and (not isinstance(data["media_url"], str) or not data["media_url"].strip()):
            problems.append(("media_url", "media_url must be a non-empty text template"))
        return problems

    def templates(self, data):
        found = [(key, data[key]) for key in ("body", "media_url") if isinstance(data.get(key), str)]
        return found + _template_map(data, "content_variables")

    def enter(self, run, node):
        data, scope, missing = node.data, run.scope(), {}
        content_variables = data.get("content_variables")
        run.status = "sending"
        run.emit(
            effects.SendMessage(
                node_id=node.id,
                visit=run.visits[node.id],
                channel=data.get("channel") or run.journey.channel,
                body=render_value(data["body"], scope, missing) if "body" in data else None,
                content_sid=data.get("content_sid"),
                content_variables=render_value(content_variables, scope, missing)
                if content_variables is not None
                else None,
                media_url=render_value(data["media_url"], scope, missing) if "media_url" in data else None,
                missing=tuple(missing),
            )
        )
        return None

    def resume(self, run, node, event):
        run.log({"kind": "outcome", "ok": bool(event.ok), "error": event.error})
        edges = run.journey.outgoing(node.id)
        if event.ok:
            return first_edge(edges, Context(ok=True)) or run.no_way_out(node)
        edge = first_edge(edges, Context(ok=False), allowed={"failure"})
        if edge is None:
            run.finish("failed", f"message {node.id!r} could not be sent: {event.error or 'no reason given'}")
        return edge


class Api(NodeType):
    name = "api"
    resumes_on = {events.ApiResponse: "active"}

    def check(self, data):
        problems = []
        url = data.get("url")
        if not isinstance(url, str) or not url.strip():
            problems.append(("url", "url is missing" if url is None else "url must be non-empty text"))
        elif not url.strip().lower().startswith(("http://", "https://", "<<")):
            problems.append(("url", f"url {url!r} must start with http:// or https://"))
        method = data.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in METHODS:
            problems.append(("method", f"method {method!r} must be one of {', '.join(METHODS)}"))
        headers = data.get("headers")
        if "headers" in data and (
            not isinstance(headers, dict) or not all(isinstance(value, str) and key for key, value in headers.items())
        ):
            problems.append(("headers", "headers must be an object of header name to text template"))
        timeout = data.get("timeout", API_TIMEOUT_DEFAULT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= API_TIMEOUT_MAX:
            problems.append(
                ("timeout", f"timeout {timeout!r} must be a number of seconds above 0 and at most {API_TIMEOUT_MAX}")
            )
        if "save_as" in data:
            problem = variable_name_problem(data["save_as"], "save_as")
            if problem:
                problems.append(("save_as", problem))
        return problems

    def templates(self, data):
        found = [("url", data["url"])] if isinstance(data.get("url"), str) else []
        return found + _template_map(data, "headers") + list(_json_strings(data.get("body"), "body"))

    def compile(self, data):
        return {"method": data.get("method", "GET").upper(), "timeout": data.get("timeout", API_TIMEOUT_DEFAULT)}

    def enter(self, run, node):
        data, scope, missing = node.data, run.scope(), {}
        run.status = "active"
        run.emit(
            effects.CallApi(
                node_id=node.id,
                visit=run.visits[node.id],
                method=node.settings["method"],
                url=render_value(data["url"], scope, missing),
                headers=render_value(data.get("headers") or {}, scope, missing),
                body=render_value(data.get("body"), scope, missing),
                timeout=node.settings["timeout"],
                save_as=data.get("save_as"),
            )
        )
        return None

    def resume(self, run, node, event):
        ok = event.error is None and isinstance(event.status, int) and 200 <= event.status < 300
        save_as = node.data.get("save_as")
        if save_as:
            run.set_variable(save_as, event.body)
            run.set_variable(f"{save_as}_status", event.status)
        run.log({"kind": "api", "status": event.status, "error": event.error, "duration_ms": event.duration_ms})
        edge = first_edge(run.journey.outgoing(node.id), Context(ok=ok))
        if edge is not None:
            return edge
        if ok:
            return run.no_way_out(node)
        run.finish(
            "failed",
            f"api call of {node.id!r} failed ({event.error or f'HTTP {event.status}'}) and it has no failure edge",
        )
        return None


def _duration_problem(data: dict, key: str, required: bool) -> list[tuple[str, str]]:
    if key not in data:
        return [(key, f"{key} is missing")] if required else []
    try:
        parse_duration(data[key])
    except ValueError as error:
        return [(key, f"{key}: {error}")]
    return []


class Delay(NodeType):
    name = "delay"
    one_unconditional_edge = True
    resumes_on = {events.TimerFired: "delayed"}

    def check(self, data):
        return _duration_problem(data, "duration", required=True)

    def compile(self, data):
        return {"seconds": parse_duration(data["duration"])}

    def enter(self, run, node):
        run.status = "delayed"
        run.emit(effects.ScheduleWake(node.id, run.visits[node.id], run.now + node.settings["seconds"]))
        return None

    def resume(self, run, node, event):
        run.log({"kind": "timer", "node": node.id, "visit": event.visit})
        return self.only_edge(run, node)


class Wait(NodeType):
    name = "wait"
    resumes_on = {events.Reply: "waiting", events.TimerFired: "waiting"}

    def check(self, data):
        return _duration_problem(data, "timeout", required=False)

    def compile(self, data):
        return {"seconds": parse_duration(data["timeout"]) if "timeout" in data else None}

    def enter(self, run, node):
        run.status = "waiting"
        if node.settings["seconds"] is not None:
            run.emit(effects.ScheduleWake(node.id, run.visits[node.id], run.now + node.settings["seconds"]))
        return None

    def resume(self, run, node, event):
        if isinstance(event, events.TimerFired):
            run.log({"kind": "timer", "node": node.id, "visit": event.visit})
            edge = first_edge(run.journey.outgoing(node.id), Context(timed_out=True), allowed={"timeout"})
            return edge or run.no_way_out(node)
        run.set_variable("reply", event.text)
        run.set_variable("payload", event.payload)
        context = Context(reply=event.text, payload=event.payload)
        edge = first_edge(run.journey.outgoing(node.id), context, allowed=REPLY_CONDITIONS, fallback=True)
        run.log(
            {
                "kind": "reply",
                "text": event.text,
                "payload": event.payload,
                "matched": edge is not None and edge.when != "fallback",
            }
        )
        if edge is not None and node.settings["seconds"] is not None:
            run.emit(effects.ScheduleWake(node.id, run.visits[node.id], None))
        return edge


class Split(NodeType):
    name = "split"

    def check_edges(self, edges):
        if len(edges) < 2:
            return [(None, f"a split node needs two or more edges out, it has {len(edges)}")]
        return []

    def enter(self, run, node):
        edges = run.journey.outgoing(node.id)
        if not edges:
            return run.no_way_out(node)
        pick = run.rng.randrange(sum(edge.weight for edge in edges))
        for edge in edges:
            pick -= edge.weight
            if pick < 0:
                return edge
        return edges[-1]


class Branch(NodeType):
    name = "branch"

    def enter(self, run, node):
        context = Context(scope=run.scope())
        return first_edge(run.journey.outgoing(node.id), context, fallback=True) or run.no_way_out(node)


SET_SCOPES = ("run", "contact")


class Set(NodeType):
    name = "set"
    one_unconditional_edge = True

    def check(self, data):
        variables = data.get("vars")
        if not isinstance(variables, dict) or not variables:
            return [("vars", "vars must be an object of variable name to text template, with at least one entry")]
        problems = []
        for name, template in variables.items():
            problem = variable_name_problem(name, "variable")
            if problem:
                problems.append(("vars", problem))
            if not isinstance(template, str):
                problems.append((f"vars.{name}", f"the value of {name!r} must be a text template"))
        if data.get("scope", "run") not in SET_SCOPES:
            problems.append(("scope", f"scope {data.get('scope')!r} must be one of {', '.join(SET_SCOPES)}"))
        return problems

    def templates(self, data):
        return _template_map(data, "vars")

    def enter(self, run, node):
        stored = {}
        for name, template in node.data["vars"].items():
            stored[name] = render(template, run.scope()).text
            run.set_variable(name, stored[name])
        entry = {"kind": "set", "node": node.id, "vars": stored}
        if node.data.get("scope") == "contact":
            entry["scope"] = "contact"  # the shell saves these as the contact's fields too
        run.log(entry)
        return self.only_edge(run, node)


class End(NodeType):
    name = "end"

    def enter(self, run, node):
        run.finish("completed", f"reached end node {node.id!r}")
        return None


NODE_TYPES: dict[str, NodeType] = {
    node_type.name: node_type
    for node_type in (Audience(), Message(), Api(), Delay(), Wait(), Split(), Branch(), Set(), End())
}
