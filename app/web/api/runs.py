"""JSON API: journey runs (start, list, statistics, contacts, stop), through `app.runs.runner` and `app.runs.read_models.summary`.

`GET /api/runs/<id>/contacts` is paginated: `?page=1&per_page=100` by
default, `per_page` at most 1000; the answer carries `page`, `per_page`,
`total` and `pages` next to `contacts`.
"""

from flask import abort, g, jsonify, request
from sqlalchemy import select

from app.extensions import db
from app.journeys import store as journeys
from app.models import Run
from app.models.vocabulary import iso_z
from app.runs import lifecycle, preflight, schedule
from app.runs.read_models import summary as run_answers
from app.web.api import bp


@bp.post("/journeys/<int:journey_id>/runs/preview")
def preview_run(journey_id: int):
    """The pre-flight of starting a run with this body (same as starting one); nothing is started."""
    journey, audience_id, contacts, start_at = _start_request(journey_id)
    try:
        return jsonify(preflight.run_preflight(journey, audience_id, contacts, start_at))
    except LookupError as error:
        abort(404, str(error))


@bp.post("/journeys/<int:journey_id>/runs")
def start_run(journey_id: int):
    """Start a run for `{"audience_id": …}` or `{"contacts": [{"phone": …}, …]}`, optional `start_at`: 202."""
    journey, audience_id, contacts, start_at = _start_request(journey_id)
    if not journeys.problems_of(journey.draft):
        try:
            blockers = preflight.run_preflight(journey, audience_id, contacts, start_at)["blockers"]
        except LookupError as error:
            abort(404, str(error))
        if blockers:
            return jsonify(error="the pre-flight found blockers: " + "; ".join(blockers), blockers=blockers), 409
    try:
        run = lifecycle.start_run(
            journey, audience_id=audience_id, contacts=contacts, user=g.api_user, start_at=start_at
        )
    except journeys.InvalidJourney as error:
        return jsonify(
            error=f"journey {journey_id} has errors: fix them before starting a run",
            problems=[journeys.problem_json(problem) for problem in error.problems],
        ), 422
    except LookupError as error:
        abort(404, str(error))
    except ValueError as error:
        abort(400, f"contacts: {error}")
    return jsonify(run_id=run.id, status=run.status), 202


def _start_request(journey_id: int):
    """The journey and the checked body of a start or preview: (journey, audience_id, contacts, start_at)."""
    journey = journeys.get(journey_id)
    if journey is None:
        abort(404, f"no journey {journey_id}")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, 'the body must be a JSON object: {"audience_id": …} or {"contacts": [{"phone": …}, …]}')
    audience_id, contacts = body.get("audience_id"), body.get("contacts")
    if (audience_id is None) == (contacts is None):
        abort(400, "give exactly one of audience_id or contacts")
    if audience_id is not None and (isinstance(audience_id, bool) or not isinstance(audience_id, int)):
        abort(400, "audience_id must be a whole number")
    if contacts is not None:
        _check_contacts(contacts)
    try:
        start_at = schedule.parse_start_at(body.get("start_at"))
    except schedule.StartAtError as error:
        abort(400, str(error))
    return journey, audience_id, contacts, start_at


@bp.get("/journeys/<int:journey_id>/runs")
def journey_runs(journey_id: int):
    """The journey's runs, newest first: `kind` is `audience` or `trigger` (its standing listening run)."""
    if journeys.get(journey_id) is None:
        abort(404, f"no journey {journey_id}")
    runs = db.session.scalars(select(Run).where(Run.journey_id == journey_id).order_by(Run.id.desc())).all()
    return jsonify(
        runs=[
            {
                "id": run.id,
                "status": run.status,
                "kind": run.kind,
                "total": run.total,
                "created_at": iso_z(run.created_at),
            }
            for run in runs
        ]
    )


@bp.get("/runs/<int:run_id>")
def run_summary(run_id: int):
    return jsonify(run_answers.run_summary(_run(run_id)))


@bp.get("/runs/<int:run_id>/contacts")
def run_contacts(run_id: int):
    run = _run(run_id)
    page = _positive_int("page", 1)
    per_page = _positive_int("per_page", run_answers.DEFAULT_PER_PAGE)
    return jsonify(run_answers.contacts_page(run, page, per_page))


@bp.post("/runs/<int:run_id>/stop")
def stop_run(run_id: int):
    run = _run(run_id)
    stopped = lifecycle.stop_run(run)
    db.session.refresh(run)
    return jsonify(id=run.id, status=run.status, stopped=stopped)


def _run(run_id: int) -> Run:
    run = db.session.get(Run, run_id)
    if run is None:
        abort(404, f"no run {run_id}")
    return run


def _check_contacts(contacts) -> None:
    if not isinstance(contacts, list) or not contacts:
        abort(400, "contacts must be a non-empty list of objects with a phone")
    for index, contact in enumerate(contacts):
        if not isinstance(contact, dict):
            abort(400, f"contacts[{index}] must be an object with a phone")
        if not str(contact.get("phone") or "").strip():
            abort(400, f"contacts[{index}].phone is missing")


def _positive_int(name: str, default: int) -> int:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        abort(400, f"{name} must be a whole number of at least 1")
    return number
