"""`failure`: taken when the message could not be sent or the API call failed."""

from __future__ import annotations

from .base import Condition, Context


class Failure(Condition):
    name = "failure"
    order = 90

    def holds(self, context: Context) -> bool:
        return context.ok is False


CONDITION = Failure
