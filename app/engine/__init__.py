"""The journey engine: what a `journey/v1` journey means, with no I/O (standard library only).

Everything else in the app is a shell around this package: it loads a
contact's state, calls `step` with what happened, stores the new state and
trail, and carries out the effects. Map of the package:

- `placeholders` `<<name|default>>` rendering and SMS length helpers (also used by bulk campaigns)
- `durations`   "90s" / "10m" / "2h" / "1d"
- `conditions/` edge conditions (`when`): one module each, a registry keyed by JSON name; keyword and
                safe regex matching, variable comparisons
- `nodes/`      node types: one module each, a registry keyed by JSON `type`: keys, defaults, allowed
                conditions, lint, how a contact moves through
- `definitions` `validate` (every error at once) and `parse` into an immutable `Definition` (lossless `to_json`)
- `lint`        warnings for valid but suspicious journeys
- `state`       `ContactState`, JSON round-trippable for the database
- `events`      inputs of `step`: Start, Reply, TimerFired, MessageOutcome, ApiResponse
- `effects`     outputs of `step`: SendMessage, CallApi, ScheduleWake, Finish
- `stepping`    `step(journey, state, event, now, rng)` -> `StepResult(state, effects, trail)`
"""

from . import effects, events
from .definitions import Definition, Edge, Node, parse, validate
from .lint import lint
from .problems import JourneyInvalid, Problem
from .state import ContactState
from .stepping import MAX_NODES_PER_STEP, StepResult, step

__all__ = [
    "ContactState",
    "Edge",
    "Definition",
    "JourneyInvalid",
    "MAX_NODES_PER_STEP",
    "Node",
    "Problem",
    "StepResult",
    "effects",
    "events",
    "lint",
    "parse",
    "step",
    "validate",
]
