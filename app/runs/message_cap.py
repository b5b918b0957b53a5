"""The run-time guard against a journey that messages one contact without end.

Validation refuses loops without a pause, but a loop through a short `delay`
or a `wait` that keeps timing out can still send a message each time round.
`MAX_MESSAGES_PER_CONTACT` caps the messages one contact is sent in one run:
the step that would send one more ends the contact as `failed` instead.
"""

from __future__ import annotations

from app import engine
from app.engine import effects

DEFAULT_MAX_MESSAGES_PER_CONTACT = 50


def messages_sent(journey: engine.Definition, state: engine.ContactState) -> int:
    """Messages a contact in `state` has been sent in this run: its visits of `message` nodes."""
    return sum(count for node_id, count in state.visits.items() if _is_message(journey, node_id))


def capped(
    journey: engine.Definition, before: engine.ContactState, result: engine.StepResult, limit: int
) -> engine.StepResult:
    """`result`, or a `failed` result without its effects when its messages would pass `limit`."""
    sends = [effect for effect in result.effects if isinstance(effect, effects.SendMessage)]
    if not sends or limit <= 0 or messages_sent(journey, result.state) <= limit:
        return result
    reason = f"reached MAX_MESSAGES_PER_CONTACT ({limit} messages in this run); not sending more"
    state = engine.ContactState(before.node_id, "failed", before.variables, before.visits, before.fields)
    trail = ({"kind": "error", "message": reason}, {"kind": "finish", "status": "failed", "reason": reason})
    return engine.StepResult(state, (effects.Finish("failed", reason),), trail)


def _is_message(journey: engine.Definition, node_id: str) -> bool:
    node = journey.node(node_id)
    return node is not None and node.type == "message"
