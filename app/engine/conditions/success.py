"""`success`: taken when the message was sent or the API answered 2xx."""

from __future__ import annotations

from .base import Condition, Context


class Success(Condition):
    name = "success"
    order = 80

    def holds(self, context: Context) -> bool:
        return context.ok is True


CONDITION = Success
