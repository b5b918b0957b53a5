"""Which contacts a journey's runs hold: a contact is in one run of a journey at a time.

A start leaves out the contacts another run of the journey has active (`lifecycle`), the pre-flight
counts them (`preflight`), and a keyword does not start the journey for them (`listening`).
"""

from sqlalchemy import select

from app.models import ACTIVE_STATES, Run, participation_table


def active_contact_ids(journey_id: int, other_than_run: int | None = None):
    """SELECT of the contacts a run of this journey (but `other_than_run`) has in a non-final state."""
    p = participation_table.c
    query = select(p.contact_id).join(Run, Run.id == p.run_id).where(Run.journey_id == journey_id)
    if other_than_run is not None:
        query = query.where(Run.id != other_than_run)
    return query.where(p.state.in_(ACTIVE_STATES))
