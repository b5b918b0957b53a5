"""The journey store: an editable draft plus immutable published versions of a `journey/v1` document.

The JSON API, the CLI, the designer pages and the runner all go through these functions, so every way in
validates the same way and a run always executes a version nobody can change afterwards. The engine
(`app.engine`) decides what is valid; this module decides what is stored and when.

- `Journey.draft` is the document as last saved, without `"id"` (the journey's id is added on export).
  `draft_revision` grows on every save; a save that names an older revision is refused (`StaleDraft`),
  so two browser tabs cannot silently overwrite each other.
- API and CLI saves are validated; the designer may store a draft with errors while editing
  (`save_draft_unchecked`), but publishing refuses errors.
- `JourneyVersion.definition` is written once, by `publish`, and never updated.

Every function that writes commits, or rolls back and raises: nothing is half-written.
"""

from __future__ import annotations

import copy
import json
from typing import NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app import engine
from app.engine.problems import Problem
from app.engine.triggers import keywords_by_channel
from app.extensions import db
from app.models import FINISHED_RUN_STATUSES, Journey, JourneyVersion, Run, User, utcnow

NAME_MAX = 200
UNTITLED = "Untitled journey"


class InvalidJourney(ValueError):
    """The document has errors; `problems` lists every one (engine `Problem`s)."""

    def __init__(self, problems: list):
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(
            f"the journey has {count} problem{'s' if count != 1 else ''}: "
            + "; ".join(describe_problem(problem) for problem in self.problems)
        )


class TriggerConflict(InvalidJourney):
    """A trigger keyword another published journey already listens to on the same channel."""


class StaleDraft(Exception):
    """The draft was saved by someone else since it was loaded; reload revision `current_revision`."""

    def __init__(self, current_revision: int):
        self.current_revision = current_revision
        super().__init__(
            f"the journey was changed elsewhere (now at revision {current_revision}); reload it before saving"
        )


class JourneyInUse(Exception):
    """The journey has an active run, so it cannot be deleted."""


class JourneyStatus(NamedTuple):
    """`status` is draft (never published), published, or changed (the draft differs from the latest version)."""

    status: str
    version: int | None


def problems_of(doc) -> list:
    """Every error of `doc` (engine `Problem`s, empty when valid); an `"id"` key is ignored."""
    if not isinstance(doc, dict):
        return [engine.Problem(severity="error", message="a journey must be a JSON object")]
    return list(engine.validate(_without_id(doc)))


def warnings_of(doc, sample_fields=None) -> list:
    """Lint warnings of a valid document (unreachable nodes, unknown placeholders…); none while it has errors.

    `sample_fields`: contact field names (e.g. an audience's columns) that placeholders may use.
    """
    if problems_of(doc):
        return []
    return list(engine.lint(engine.parse(_without_id(doc)), sample_fields=sample_fields))


def problem_json(problem) -> dict:
    """A problem as the API and the designer show it."""
    return {
        "message": problem.message,
        "node_id": problem.node_id,
        "edge_index": problem.edge_index,
        "field": problem.field,
        "severity": problem.severity,
    }


def describe_problem(problem) -> str:
    """One line: the message (which names the place) and where, e.g. `… [node ask, field timeout]`."""
    where = []
    if problem.node_id is not None:
        where.append(f"node {problem.node_id}")
    if problem.edge_index is not None:
        where.append(f"edge {problem.edge_index}")
    if problem.field:
        where.append(f"field {problem.field}")
    return f"{problem.message} [{', '.join(where)}]" if where else problem.message


def get(journey_id) -> Journey | None:
    """The journey with that id, or None (also for ids that are not numbers)."""
    try:
        return db.session.get(Journey, int(journey_id))
    except (TypeError, ValueError):
        return None


def all_journeys() -> list[Journey]:
    """Every journey, most recently edited first."""
    return list(db.session.scalars(select(Journey).order_by(Journey.updated_at.desc(), Journey.id.desc())))


def create_journey(doc: dict, user: User | None = None) -> Journey:
    """Store a valid document as the draft of a new journey (not yet published).

    `user` is accepted for symmetry with `publish`; authorship is recorded on versions.
    """
    document = _checked(doc)
    journey = Journey(name=_name_of(document), draft=document, draft_revision=1)
    db.session.add(journey)
    db.session.commit()
    return journey


def import_document(doc: dict) -> Journey:
    """Import a `journey/v1` file as a new journey, all or nothing (an `"id"` in it is ignored)."""
    return create_journey(doc)


def update_draft(journey: Journey, doc: dict, expected_revision: int | None = None) -> Journey:
    """Replace the draft with a valid document; the draft is unchanged when it has errors."""
    return _save_draft(journey, _checked(doc), expected_revision)


def save_draft_unchecked(journey: Journey, doc: dict, expected_revision: int | None) -> Journey:
    """Store a draft that may still have journey errors (the designer saves while you edit).

    Only the shape needed to store and reopen it is checked: an object with `nodes` and `edges` lists.
    """
    if not isinstance(doc, dict):
        raise InvalidJourney([engine.Problem(severity="error", message="a journey must be a JSON object")])
    shape = [
        engine.Problem(severity="error", message=f"{key!r} must be a list", field=key)
        for key in ("nodes", "edges")
        if not isinstance(doc.get(key), list)
    ]
    if shape:
        raise InvalidJourney(shape)
    return _save_draft(journey, _stored_copy(doc), expected_revision)


def publish(journey: Journey, note: str = "", user: User | None = None) -> JourneyVersion:
    """Freeze the draft as the next version; the latest version is returned unchanged if the draft equals it.

    Refuses a draft with errors (`InvalidJourney`).
    """
    definition = _definition_of(_checked(journey.draft))
    conflicts = trigger_conflicts(journey.id, definition)
    if conflicts:
        raise TriggerConflict(conflicts)
    latest = latest_version(journey)
    if latest is not None and latest.definition == definition:
        return latest
    version = JourneyVersion(
        journey_id=journey.id,
        number=(latest.number if latest else 0) + 1,
        definition=definition,
        note=note or "",
        created_by_id=user.id if user is not None else None,
    )
    db.session.add(version)
    try:
        db.session.commit()
    except IntegrityError:
        # Someone published the same journey at the same moment: their version wins if it is ours too.
        db.session.rollback()
        latest = latest_version(journey)
        if latest is not None and latest.definition == definition:
            return latest
        raise
    return version


def trigger_conflicts(journey_id: int, definition: dict) -> list:
    """Problems for each keyword of `definition` that another journey's listening run already answers."""
    mine = keywords_by_channel(definition)
    if not mine:
        return []
    rows = db.session.execute(
        select(Journey.id, Journey.name, JourneyVersion.definition)
        .join(Run, Run.journey_id == Journey.id)
        .join(JourneyVersion, JourneyVersion.id == Run.version_id)
        .where(Run.status == "listening", Journey.id != journey_id)
    ).all()
    problems = []
    for other_id, other_name, other_definition in rows:
        theirs = keywords_by_channel(other_definition)
        for channel, keywords in mine.items():
            problems += [
                Problem(
                    "error",
                    f"trigger keyword {keyword!r} on {channel} is already used by the published journey "
                    f"{other_name!r} (#{other_id}); pick another keyword or stop that journey's triggers",
                    field="triggers",
                )
                for keyword in keywords
                if keyword in theirs.get(channel, ())
            ]
    return problems


def version_for_run(journey: Journey, user: User | None = None) -> JourneyVersion:
    """The immutable version a new run executes: the draft, published if it changed since the last version.

    A draft with errors is refused (`InvalidJourney`) rather than silently running an older version
    than the one the operator sees.
    """
    return publish(journey, note="published to start a run", user=user)


def latest_version(journey: Journey) -> JourneyVersion | None:
    return db.session.scalar(
        select(JourneyVersion).filter_by(journey_id=journey.id).order_by(JourneyVersion.number.desc()).limit(1)
    )


def status_of(journey: Journey) -> JourneyStatus:
    """Whether the journey was published, and whether its draft changed since."""
    latest = latest_version(journey)
    if latest is None:
        return JourneyStatus("draft", None)
    if problems_of(journey.draft) or _definition_of(journey.draft) != latest.definition:
        return JourneyStatus("changed", latest.number)
    return JourneyStatus("published", latest.number)


def export_document(journey_or_version: Journey | JourneyVersion) -> dict:
    """The `journey/v1` document (a journey's draft, or a version's definition) with `"id"` = journey id."""
    if isinstance(journey_or_version, JourneyVersion):
        journey_id, document = journey_or_version.journey_id, journey_or_version.definition
    else:
        journey_id, document = journey_or_version.id, journey_or_version.draft
    return {"id": journey_id, **copy.deepcopy(document)}


def duplicate(journey: Journey, user: User | None = None) -> Journey:
    """A new journey whose draft is a copy of this one's, named "Copy of …"; versions are not copied."""
    document = copy.deepcopy(journey.draft)
    document["name"] = f"Copy of {_name_of(document)}"[:NAME_MAX]
    copy_of = Journey(name=document["name"], draft=document, draft_revision=1)
    db.session.add(copy_of)
    db.session.commit()
    return copy_of


def delete(journey: Journey) -> None:
    """Delete the journey with its versions and finished runs; refused while one of its runs is active."""
    if has_active_run(journey):
        raise JourneyInUse(f"journey {journey.id} has an active run: stop it first")
    db.session.delete(journey)
    db.session.commit()


def has_active_run(journey: Journey) -> bool:
    active = (
        select(func.count())
        .select_from(Run)
        .where(Run.journey_id == journey.id, Run.status.not_in(FINISHED_RUN_STATUSES))
    )
    return db.session.scalar(active) > 0


def _checked(doc) -> dict:
    """A stored copy of a valid document, or InvalidJourney with every problem."""
    problems = problems_of(doc)
    if problems:
        raise InvalidJourney(problems)
    return _stored_copy(doc)


def _stored_copy(doc: dict) -> dict:
    """A deep, JSON-only copy without `"id"`, so the stored draft never shares objects with the caller."""
    try:
        return json.loads(json.dumps(_without_id(doc)))
    except (TypeError, ValueError) as error:
        raise InvalidJourney([engine.Problem(severity="error", message=f"not JSON data: {error}")]) from None


def _definition_of(document: dict) -> dict:
    """The engine's lossless export of a valid document, as plain JSON data (what a version stores)."""
    return json.loads(json.dumps(engine.parse(document).to_json()))


def _without_id(doc: dict) -> dict:
    return {key: value for key, value in doc.items() if key != "id"}


def _name_of(document: dict) -> str:
    name = document.get("name")
    return name.strip()[:NAME_MAX] if isinstance(name, str) and name.strip() else UNTITLED


def _save_draft(journey: Journey, document: dict, expected_revision: int | None) -> Journey:
    """Compare-and-set the draft: one UPDATE that only matches the expected revision."""
    statement = update(Journey).where(Journey.id == journey.id)
    if expected_revision is not None:
        statement = statement.where(Journey.draft_revision == expected_revision)
    statement = statement.values(
        draft=document,
        name=_name_of(document),
        draft_revision=Journey.draft_revision + 1,
        updated_at=utcnow(),
    )
    saved = db.session.execute(statement, execution_options={"synchronize_session": False}).rowcount
    if not saved:
        db.session.rollback()
        current = db.session.scalar(select(Journey.draft_revision).where(Journey.id == journey.id))
        raise StaleDraft(current)
    db.session.commit()
    return journey
