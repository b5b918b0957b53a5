"""What happens to a contact from outside: the inputs of `step`.

The shell turns webhooks, timers and job results into these and calls `step`.
`to_json` / `from_json` give them a plain form for queues and test cases:
`{"type": "Reply", "text": "yes", "payload": null}`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Start:
    """The contact enters the journey at its `audience` node."""


@dataclass(frozen=True)
class Reply:
    """An inbound message; `payload` is the WhatsApp quick-reply ButtonPayload."""

    text: str
    payload: str | None = None


@dataclass(frozen=True)
class TimerFired:
    """A wake scheduled by `ScheduleWake(node_id, visit, at)` is due."""

    node_id: str
    visit: int


@dataclass(frozen=True)
class MessageOutcome:
    """The provider accepted (`ok`) or permanently refused the message being sent."""

    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class ApiResponse:
    """Result of a `CallApi`: HTTP status (None on timeout or network error) and JSON body."""

    status: int | None
    body: Any = None
    error: str | None = None
    duration_ms: float | None = None


EVENT_TYPES = {cls.__name__: cls for cls in (Start, Reply, TimerFired, MessageOutcome, ApiResponse)}
Event = Start | Reply | TimerFired | MessageOutcome | ApiResponse


def to_json(event: Event) -> dict:
    """`{"type": <class name>, **fields}`."""
    return {"type": type(event).__name__, **asdict(event)}


def from_json(data: dict) -> Event:
    """The event a `to_json` dict describes; ValueError for an unknown type or field."""
    fields = dict(data)
    kind = EVENT_TYPES.get(fields.pop("type", None))
    if kind is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    try:
        return kind(**fields)
    except TypeError as error:
        raise ValueError(f"bad {kind.__name__} event: {error}") from None
