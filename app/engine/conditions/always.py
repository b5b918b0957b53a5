"""Unconditional: the edge is always taken (the default when `when` is left out)."""

from __future__ import annotations

from .base import Condition, Context


class Always(Condition):
    name = "always"
    order = 10

    def holds(self, context: Context) -> bool:
        return True


CONDITION = Always
