"""`ContactState`: where one contact stands in a journey, stored by the shell as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

ACTIVE_STATES = ("active", "sending", "waiting", "delayed")
FINAL_STATES = ("completed", "failed", "filtered", "stopped", "opted_out")
STATES = ACTIVE_STATES + FINAL_STATES
TIMER_STATES = ("waiting", "delayed")  # a wake time is set: the contact moves on when it comes
WORKING_STATES = ("active", "sending")  # the shell is acting for the contact (a call, a send) right now


@dataclass(frozen=True)
class ContactState:
    """One contact's position and memory in a journey.

    `node_id` is None before `Start`. `variables` holds what the journey stored
    (`set`, `save_as`, `reply`, `payload`); `fields` the contact's own columns;
    `visits` how many times each node was entered. `step` never changes a
    state; it returns a new one with new dicts.
    """

    node_id: str | None = None
    status: str = "active"
    variables: dict = field(default_factory=dict)
    visits: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    def to_json(self) -> dict:
        return {
            "node_id": self.node_id,
            "status": self.status,
            "variables": self.variables,
            "visits": self.visits,
            "fields": self.fields,
        }

    @classmethod
    def from_json(cls, data: dict) -> ContactState:
        """Rebuild a stored state; ValueError names the field that is wrong."""
        if not isinstance(data, dict):
            raise ValueError("contact state must be an object")
        node_id, status = data.get("node_id"), data.get("status", "active")
        if node_id is not None and not isinstance(node_id, str):
            raise ValueError("contact state node_id must be text or null")
        if status not in STATES:
            raise ValueError(f"contact state status {status!r} is not one of {', '.join(STATES)}")
        parts = {}
        for name in ("variables", "visits", "fields"):
            value = data.get(name)
            value = {} if value is None else value
            if not isinstance(value, dict):
                raise ValueError(f"contact state {name} must be an object")
            parts[name] = dict(value)
        if not all(isinstance(count, int) and not isinstance(count, bool) for count in parts["visits"].values()):
            raise ValueError("contact state visits must map node ids to whole numbers")
        return cls(node_id=node_id, status=status, **parts)
