"""`payload`: a WhatsApp button reply whose payload is exactly this text."""

from __future__ import annotations

from typing import Any

from .base import Condition, Context


class Payload(Condition):
    name = "payload"
    order = 40
    bare = False
    reply = True

    def __init__(self, payload: str):
        self.payload = payload

    @classmethod
    def problems(cls, when: Any) -> list[str]:
        payload = when.get("payload")
        return [] if isinstance(payload, str) and payload else ["payload must be non-empty text"]

    @classmethod
    def compile(cls, when: Any) -> Condition:
        return cls(when["payload"])

    def holds(self, context: Context) -> bool:
        return context.payload == self.payload


CONDITION = Payload
