"""Jobs of the `flows` queue: journey runs (see `app.runs.runner`, which enqueues them in batches).

Each job takes participation ids (or small tuples) and is safe to run twice:
the runner only steps a participation still waiting for that event.
"""

from app.runs import advancing, lifecycle, prune
from app.tasks import job


@job
def prepare_run(run_id: int) -> int:
    """Insert an audience run's participations in chunks and enqueue their first steps."""
    return lifecycle.prepare_run(run_id)


@job
def advance(participation_ids: list[int]) -> int:
    """Start participations (or resume ones whose job was lost)."""
    return advancing.advance(participation_ids)


@job
def fire_timers(items: list[tuple[int, str, int]]) -> int:
    """Fire due delays and wait timeouts: `(participation_id, node_id, visit)` each."""
    return advancing.fire_timers(items)


@job
def call_apis(participation_ids: list[int]) -> int:
    """Make the pending `api` node calls of these participations and step them with the answers."""
    return advancing.call_apis(participation_ids)


@job
def recover_sending(participation_ids: list[int]) -> int:
    """Resume `sending` participations whose message outcome never reached them."""
    return advancing.recover_sending(participation_ids)


@job
def prune_run(run_id: int) -> str:
    """Archive a finished run's results to CSV and delete its steps and message texts; returns the archive."""
    return str(prune.prune_run(run_id).archive)
