"""Where a run's contacts are now: one grouped count (state x node) over a covering index.

Every state and every node of the run's version is present in the answers, zeros included.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, func, select

from app import engine
from app.extensions import db
from app.models import Participation
from app.models.vocabulary import ACTIVE_STATES, LIVE_RUN_STATUSES, STATES, TIMER_STATES, WORKING_STATES

LATE_TIMER = timedelta(minutes=1)
STUCK_AFTER = timedelta(minutes=5)


def positions(run_id: int, journey: engine.Definition | None = None) -> tuple[dict[str, int], dict[str, dict]]:
    """Contacts per state, and per node of `journey`: `here` (there, not finished) and `ended` (finished
    there); each node's `visits` is left at 0 for the history tally to fill."""
    states = dict.fromkeys(STATES, 0)
    nodes = {node.id: {"visits": 0, "here": 0, "ended": 0} for node in journey.nodes} if journey else {}
    p = Participation
    for state, node_id, number in db.session.execute(
        select(p.state, p.node_id, func.count()).where(p.run_id == run_id).group_by(p.state, p.node_id)
    ):
        states[state] = states.get(state, 0) + number
        if node_id in nodes:
            nodes[node_id]["here" if state in ACTIVE_STATES else "ended"] += number
    return states, nodes


def state_counts(run_id: int) -> dict[str, int]:
    """Participations per contact state."""
    return positions(run_id)[0]


def overdue_conditions(now: datetime) -> tuple:
    """(a timer more than a minute late, a contact stuck in active/sending for over five minutes)."""
    p = Participation
    return (
        and_(p.state.in_(TIMER_STATES), p.wake_at < now - LATE_TIMER),
        and_(p.state.in_(WORKING_STATES), p.updated_at < now - STUCK_AFTER),
    )


def overdue_counts(run_id: int, now: datetime) -> tuple[int, int]:
    late, stuck = overdue_conditions(now)
    p = Participation
    # Late timers are found through the `wake_at` index (few, across all runs), not the run's waiting rows.
    return (
        db.session.scalar(select(func.count()).where(p.run_id + 0 == run_id, late)),
        db.session.scalar(select(func.count()).where(p.run_id == run_id, stuck)),
    )


def live_run_states(runs) -> dict[int, dict[str, int]]:
    """Contacts per state for the runs still moving (finished runs show their status instead)."""
    live = [run.id for run in runs if run.status in LIVE_RUN_STATUSES]
    counts = {run_id: dict.fromkeys(STATES, 0) for run_id in live}
    if live:
        rows = db.session.execute(
            select(Participation.run_id, Participation.state, func.count())
            .where(Participation.run_id.in_(live))
            .group_by(Participation.run_id, Participation.state)
        )
        for run_id, state, number in rows:
            counts[run_id][state] = number
    return counts
