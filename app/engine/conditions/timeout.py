"""`timeout`: taken when a wait's timeout passes with no reply."""

from __future__ import annotations

from .base import Condition, Context


class Timeout(Condition):
    name = "timeout"
    order = 70

    def holds(self, context: Context) -> bool:
        return context.timed_out


CONDITION = Timeout
