"""JSON API: audiences."""

from . import bp  # noqa: F401
