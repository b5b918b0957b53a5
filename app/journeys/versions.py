"""Published versions as the engine reads them: parsed once per process (a version never changes).

Below the runner and the read models, so both take the same parsed journey from one cache.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app import engine
from app.extensions import db
from app.models import JourneyVersion

CACHE_SIZE = 256
_parsed_versions: dict[tuple, engine.Definition] = {}


def journey_for_version(version_id: int, created_at: datetime | None = None) -> engine.Definition:
    """The parsed journey of a version, cached in-process (versions never change).

    `created_at` is part of the key so a reused id (a test database emptied
    and refilled) never returns another version's journey.
    """
    if created_at is None:
        created_at = db.session.scalar(select(JourneyVersion.created_at).where(JourneyVersion.id == version_id))
    key = (version_id, created_at)
    journey = _parsed_versions.get(key)
    if journey is None:
        definition = db.session.scalar(select(JourneyVersion.definition).where(JourneyVersion.id == version_id))
        journey = engine.parse(definition)
        if len(_parsed_versions) > CACHE_SIZE:
            _parsed_versions.clear()
        _parsed_versions[key] = journey
    return journey
