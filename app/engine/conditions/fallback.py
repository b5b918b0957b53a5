"""`fallback`: taken when no other edge of the node held (never holds by itself)."""

from __future__ import annotations

from .base import Condition, Context


class Fallback(Condition):
    name = "fallback"
    order = 60

    def holds(self, context: Context) -> bool:
        return False


CONDITION = Fallback
