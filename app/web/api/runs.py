"""JSON API: runs."""

from . import bp  # noqa: F401
