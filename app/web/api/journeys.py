"""JSON API: journeys."""

from . import bp  # noqa: F401
