"""`step`: move one contact through a journey in answer to one event.

A call continues through nodes that need nothing from outside (`audience`,
`set`, `split`, `branch`, `end`) and stops at the first that does: `message`
(status `sending`, until `MessageOutcome`), `api` (status `active`, until
`ApiResponse`), `delay` (status `delayed`, until `TimerFired`) or `wait`
(status `waiting`, until `Reply` or `TimerFired`), or when the contact
finishes. An event the contact is not waiting for (a reply while it is being
sent a message, a timer of an earlier visit, anything after a final state)
is reported as an `ignored` trail entry and changes nothing.

Variables in scope, later shadowing earlier, names compared without case:
the contact's `fields`, then the journey's `variables` (`set`, `save_as`),
then `reply`/`payload` (kept in `variables`; `set` and `save_as` may not use
those names). More than `MAX_NODES_PER_STEP` node entries in one call means
a loop without a pause: the contact finishes `failed`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import effects, events
from .definitions import Definition, Node
from .placeholders import scope
from .state import FINAL_STATES, ContactState

MAX_NODES_PER_STEP = 100


@dataclass(frozen=True)
class StepResult:
    state: ContactState
    effects: tuple
    trail: tuple


class Walk:
    """The working state of one `step` call, handed to the node types."""

    def __init__(self, journey: Definition, state: ContactState, now: float, rng: random.Random):
        self.journey, self.now, self.rng = journey, now, rng
        self.node_id, self.status, self.fields = state.node_id, state.status, state.fields
        self.variables, self.visits = dict(state.variables), dict(state.visits)
        self.effects: list = []
        self.trail: list = []
        self.entries = 0
        self._scope: dict | None = None

    def scope(self) -> dict:
        if self._scope is None:
            self._scope = scope(self.fields, self.variables)
        return self._scope

    def set_variable(self, name: str, value) -> None:
        self.variables[name] = value
        self._scope = None

    def emit(self, effect) -> None:
        self.effects.append(effect)

    def log(self, entry: dict) -> None:
        self.trail.append(entry)

    def finish(self, status: str, reason: str) -> None:
        self.status = status
        self.log({"kind": "finish", "status": status, "reason": reason})
        self.emit(effects.Finish(status, reason))

    def no_way_out(self, node: Node) -> None:
        self.finish("completed", f"no edge to follow out of node {node.id!r}")

    def enter(self, node: Node):
        self.entries += 1
        if self.entries > MAX_NODES_PER_STEP:
            message = (
                f"stopped after {MAX_NODES_PER_STEP} nodes in one step, before node {node.id!r}: "
                "the journey loops without a wait or delay"
            )
            self.log({"kind": "error", "message": message})
            self.finish("failed", message)
            return None
        self.node_id, self.status = node.id, "active"
        self.visits[node.id] = self.visits.get(node.id, 0) + 1
        self.log({"kind": "enter", "node": node.id, "visit": self.visits[node.id]})
        return node.kind.enter(self, node)

    def go(self, edge) -> None:
        while edge is not None:
            self.log({"kind": "edge", "from": edge.source, "to": edge.target, "index": edge.index, "label": edge.label})
            edge = self.enter(self.journey.node(edge.target))

    def result(self) -> StepResult:
        state = ContactState(self.node_id, self.status, self.variables, self.visits, self.fields)
        return StepResult(state, tuple(self.effects), tuple(self.trail))


_NOT_EXPECTED = {
    events.Reply: "not waiting",
    events.TimerFired: "not delayed or waiting",
    events.MessageOutcome: "not sending",
    events.ApiResponse: "not calling an api",
}


def _why_ignored(node: Node | None, state: ContactState, event) -> str | None:
    """Why `event` does not apply to a contact in `state` at `node`, or None when it does."""
    if state.status in FINAL_STATES:
        return f"contact is {state.status}"
    if isinstance(event, events.Start):
        return "already started" if state.node_id is not None else None
    if state.node_id is None:
        return "not started"
    if node is None:
        return None  # the stored node is gone: `step` fails the contact
    if node.kind.resumes_on.get(type(event)) != state.status:
        return _NOT_EXPECTED.get(type(event), f"unknown event {type(event).__name__}")
    if isinstance(event, events.TimerFired) and (event.node_id != node.id or event.visit != state.visits.get(node.id)):
        return f"stale timer for node {event.node_id!r} visit {event.visit}"
    return None


def step(journey: Definition, state: ContactState, event, now: float, rng: random.Random | None = None) -> StepResult:
    """Apply one event to one contact; returns the new state, effects for the shell, and trail entries.

    `now` is the epoch time wakes are scheduled from; `rng` drives `split` (pass a seeded one in tests).
    """
    node = journey.node(state.node_id) if state.node_id is not None else None
    reason = _why_ignored(node, state, event)
    if reason is not None:
        return StepResult(state, (), ({"kind": "ignored", "reason": reason},))
    run = Walk(journey, state, now, rng or random.Random())
    if isinstance(event, events.Start):
        run.go(run.enter(journey.audience))
    elif node is None:
        message = f"node {state.node_id!r} is not in this journey"
        run.log({"kind": "error", "message": message})
        run.finish("failed", message)
    else:
        run.go(node.kind.resume(run, node, event))
    return run.result()
