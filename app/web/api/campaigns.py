"""JSON API: campaigns."""

from . import bp  # noqa: F401
