"""What `step` asks the shell to do: the outputs of `step`.

The engine never sends, calls or sleeps; it returns these, in order, and the
shell carries them out. `node_id` + `visit` identify the node entry an effect
belongs to (the shell's idempotency key is participation + node + visit).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SendMessage:
    """Send one message; answer with `MessageOutcome`. `missing` lists unfilled placeholders."""

    node_id: str
    visit: int
    channel: str
    body: str | None
    content_sid: str | None
    content_variables: dict | None
    media_url: str | None
    missing: tuple[str, ...]


@dataclass(frozen=True)
class CallApi:
    """Make one HTTP request; answer with `ApiResponse`. `body` is None, text or a JSON value."""

    node_id: str
    visit: int
    method: str
    url: str
    headers: dict
    body: Any
    timeout: float
    save_as: str | None


@dataclass(frozen=True)
class ScheduleWake:
    """Deliver `TimerFired(node_id, visit)` at epoch second `at`; `at=None` cancels a pending wake."""

    node_id: str
    visit: int
    at: float | None


@dataclass(frozen=True)
class Finish:
    """The contact reached a final state: `completed`, `failed` or `filtered`."""

    status: str
    reason: str


Effect = SendMessage | CallApi | ScheduleWake | Finish


def to_json(effect: Effect) -> dict:
    """`{"type": <class name>, **fields}`, JSON-ready (tuples become lists)."""
    data = asdict(effect)
    if "missing" in data:
        data["missing"] = list(data["missing"])
    return {"type": type(effect).__name__, **data}
