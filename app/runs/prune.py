"""Pruning finished runs: their results archived to a CSV file, their history and message bodies deleted.

The step history (about nine rows per contact) and the message texts are
what grows without end; a finished run's page needs neither once its counts
are kept. So, for one finished run, in an order that a crash at any point
leaves safe to redo:

1. its final counts (node visits, edges taken, message statuses, error
   codes) are stored on the run, unless an earlier attempt did already, and
   from then on the run page and `GET /api/runs/<id>` read them;
2. its results (`app.runs.export`, one row per contact: state, node,
   variables, replies) are written to `<RUN_ARCHIVE_DIR>/run-<id>.csv`
   through a temporary file renamed into place once complete;
3. its steps are deleted, and the text of its messages in and out cleared,
   in chunks of `CHUNK` rows per transaction;
4. `pruned_at` is set.

Participations (each contact's final state and variables) and the message
rows with their statuses stay, so the counts of states and messages remain
exact queries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import delete, select, update

from app.extensions import db
from app.journeys.versions import journey_for_version
from app.models import FINISHED_RUN_STATUSES, InboundMessage, Message, Participation, Run, Step, utcnow
from app.runs import export
from app.runs.read_models.tally import final_tally

CHUNK = 10_000


class NotPrunable(ValueError):
    """The run is not finished (or does not exist): nothing was changed."""


@dataclass(frozen=True)
class Pruned:
    run_id: int
    archive: Path
    steps_deleted: int
    bodies_cleared: int


def archive_dir() -> Path:
    """Where archives go: `RUN_ARCHIVE_DIR`, default `instance/archive/`."""
    configured = current_app.config.get("RUN_ARCHIVE_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "archive"


def runs_finished_before(cutoff: datetime) -> list[int]:
    """Ids of the finished, not yet pruned runs that finished before `cutoff` (naive UTC)."""
    return list(
        db.session.scalars(
            select(Run.id)
            .where(Run.status.in_(FINISHED_RUN_STATUSES), Run.finished_at < cutoff, Run.pruned_at.is_(None))
            .order_by(Run.id)
        )
    )


def prune_run(run_id: int) -> Pruned:
    """Archive and prune one finished run (see the module's steps); safe to call again after a crash."""
    run = db.session.get(Run, run_id)
    if run is None:
        raise NotPrunable(f"no run {run_id}")
    if run.status not in FINISHED_RUN_STATUSES:
        raise NotPrunable(f"run {run_id} is {run.status}: only a finished run can be pruned")
    if run.final_counts is None:
        tally = final_tally(run, journey_for_version(run.version_id))
        run.final_counts = {"tally": tally, "at": utcnow().isoformat()}
        db.session.commit()
    archive = Path(run.archive_path) if run.archive_path else None
    if archive is None or not archive.exists():
        archive = _write_archive(run)
        run.archive_path = str(archive)
        db.session.commit()
    steps = _delete_in_chunks(select(Step.id).where(Step.run_id == run_id), Step)
    bodies = _clear_bodies(run_id)
    run.pruned_at = utcnow()
    db.session.commit()
    current_app.logger.info(
        "pruned run %s: archived to %s, %d steps deleted, %d message texts cleared", run_id, archive, steps, bodies
    )
    return Pruned(run_id, archive, steps, bodies)


def _write_archive(run: Run) -> Path:
    """The run's results CSV, written whole to a temporary file, synced, then renamed into place."""
    directory = archive_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"run-{run.id}.csv"
    partial = directory / f".run-{run.id}.csv.partial"
    with open(partial, "w", encoding="utf-8", newline="") as out:
        for chunk in export.export_csv(run):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
    return target


def _delete_in_chunks(ids_query, model) -> int:
    deleted = 0
    while ids := list(db.session.scalars(ids_query.order_by(model.id).limit(CHUNK))):
        deleted += db.session.execute(delete(model).where(model.id.in_(ids))).rowcount
        db.session.commit()
    return deleted


def _clear_bodies(run_id: int) -> int:
    """Clear the text of the run's outbound messages (body, template variables, media) and of its replies."""
    of_run = select(Participation.id).where(Participation.run_id == run_id)
    cleared, after = 0, 0
    while ids := list(
        db.session.scalars(
            select(Message.id)
            .where(Message.participation_id.in_(of_run), Message.id > after)
            .order_by(Message.id)
            .limit(CHUNK)
        )
    ):
        cleared += db.session.execute(
            update(Message).where(Message.id.in_(ids)).values(body=None, content_variables=None, media_url=None)
        ).rowcount
        db.session.commit()
        after = ids[-1]
    cleared += db.session.execute(
        update(InboundMessage).where(InboundMessage.participation_id.in_(of_run)).values(body="", payload=None)
    ).rowcount
    db.session.commit()
    return cleared
