"""A run's results as CSV, streamed: one row per contact with its state, node, variables and replies.

The rows are read a page at a time by keyset on the participation id (never OFFSET, never the whole run),
so exporting 100,000 contacts uses as little memory as exporting ten and starts sending at once.

Spreadsheets run cells that start with `=`, `+`, `-`, `@`, tab or carriage return as formulas, so any
such cell (a reply, a variable, even a phone number) is written with a leading `'` (OWASP's advice on
CSV injection).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from sqlalchemy import select

from app.engine.nodes import NODE_TYPES
from app.extensions import db
from app.models import Contact, Participation, Run, Step

PAGE_SIZE = 2000
FORMULA_STARTS = frozenset("=+-@\t\r")
FIXED_COLUMNS = ["participation_id", "phone", "name", "state", "node", "started_at", "updated_at", "error"]


def safe_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: `'` before anything that would start a formula."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return "'" + text if text[:1] in FORMULA_STARTS else text


def variable_names(definition: dict) -> list[str]:
    """The variables a journey can store, in a stable order: what each node type stores (`set` names,
    `save_as` results and statuses), then `reply` and `payload`."""
    names = []
    for node in definition.get("nodes", []):
        node_type = NODE_TYPES.get(node.get("type"))
        if node_type is not None:
            names += node_type.stored_variables(node)
    names += ["reply", "payload"]
    return list(dict.fromkeys(names))


def export_csv(run: Run) -> Iterator[str]:
    """The run's results, CSV text chunk by chunk (one chunk per page of contacts).

    What is needed from `run` is read now: the chunks are made while the response streams, after the
    request's database session has ended, so they only run their own queries.
    """
    return _chunks(run.id, variable_names(run.version.definition))


def _chunks(run_id: int, variables: list[str]) -> Iterator[str]:
    header = [*FIXED_COLUMNS, *(f"var.{name}" for name in variables), "other_variables", "replies"]
    yield _csv_text([header])
    after = 0
    while True:
        page = _page(run_id, after)
        if not page:
            return
        replies = _replies(run_id, page[0].id, page[-1].id)
        lines = []
        for row in page:
            stored = dict(row.variables or {})
            values = [stored.pop(name, None) for name in variables]
            lines.append(
                [
                    row.id,
                    row.phone,
                    row.name,
                    row.state,
                    row.node_id,
                    _iso(row.started_at),
                    _iso(row.updated_at),
                    row.error,
                    *values,
                    stored or None,
                    " | ".join(replies.get(row.id, ())),
                ]
            )
        yield _csv_text(lines)
        after = page[-1].id


def _page(run_id: int, after: int) -> list:
    """The next page of contacts (Core rows: no ORM objects to build); only the variables of the stored
    engine state are read, decoded from JSON."""
    p = Participation
    return (
        db.session.connection()
        .execute(
            select(
                p.id,
                Contact.phone,
                Contact.name,
                p.state,
                p.node_id,
                p.started_at,
                p.updated_at,
                p.error,
                p.engine_state["variables"].label("variables"),
            )
            .join(Contact, Contact.id == p.contact_id)
            .where(p.run_id == run_id, p.id > after)
            .order_by(p.id)
            .limit(PAGE_SIZE)
        )
        .all()
    )


def _replies(run_id: int, first: int, last: int) -> dict[int, list[str]]:
    """Every reply text of the run's participations with ids from `first` to `last`, in the order they came.

    Read by a range of the step history's participation index (`run_id + 0` keeps the planner on it).
    """
    found: dict[int, list[str]] = {}
    s = Step
    rows = db.session.connection().execute(
        select(s.participation_id, s.detail["text"].as_string())
        .where(s.participation_id.between(first, last), s.run_id + 0 == run_id, s.kind == "reply")
        .order_by(s.id)
    )
    for participation_id, text in rows:
        found.setdefault(participation_id, []).append(text or "")
    return found


def _csv_text(rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([[safe_cell(value) for value in row] for row in rows])
    return out.getvalue()


def _iso(value) -> str | None:
    return value.isoformat(" ", "seconds") if value is not None else None
