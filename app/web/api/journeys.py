"""JSON API: journeys (create, read, replace the draft, list, publish, delete), through `app.journeys.store`.

`PUT` takes an optional `If-Match: <revision>` header: a draft saved elsewhere since then is not
overwritten (409). Journey runs (`/api/journeys/<id>/runs`) live in `runs.py`.
"""

from flask import abort, current_app, g, jsonify, request

from app.journeys import store as journeys
from app.models.vocabulary import iso_z
from app.runs import listening
from app.web.api import bp


@bp.get("/journeys")
def list_journeys():
    return jsonify([_summary(journey) for journey in journeys.all_journeys()])


@bp.post("/journeys")
def create_journey():
    try:
        journey = journeys.create_journey(_document(), user=g.api_user)
    except journeys.InvalidJourney as error:
        return _invalid(error)
    return jsonify(id=journey.id), 201


@bp.get("/journeys/<int:journey_id>")
def get_journey(journey_id: int):
    return jsonify(journeys.export_document(_journey(journey_id)))


@bp.put("/journeys/<int:journey_id>")
def replace_draft(journey_id: int):
    journey = _journey(journey_id)
    try:
        journeys.update_draft(journey, _document(), expected_revision=_expected_revision())
    except journeys.InvalidJourney as error:
        return _invalid(error)
    except journeys.StaleDraft as error:
        return jsonify(error=str(error), revision=error.current_revision), 409
    return jsonify(_summary(journey))


@bp.post("/journeys/<int:journey_id>/publish")
def publish_journey(journey_id: int):
    journey = _journey(journey_id)
    body = request.get_json(silent=True)
    note = body.get("note", "") if isinstance(body, dict) else ""
    try:
        version = journeys.publish(journey, note=str(note), user=g.api_user)
    except journeys.TriggerConflict as error:
        return jsonify(
            error="a trigger keyword is already in use", problems=[journeys.problem_json(p) for p in error.problems]
        ), 409
    except journeys.InvalidJourney as error:
        return _invalid(error)
    listening_run = listening.sync(
        journey, version, arm=True, user=g.api_user, dry_run=bool(current_app.config.get("DRY_RUN"))
    )
    return jsonify(
        id=journey.id,
        version=version.number,
        version_id=version.id,
        listening_run_id=listening_run.id if listening_run is not None else None,
    )


@bp.delete("/journeys/<int:journey_id>")
def delete_journey(journey_id: int):
    try:
        journeys.delete(_journey(journey_id))
    except journeys.JourneyInUse as error:
        return jsonify(error=str(error)), 409
    return jsonify(deleted=journey_id)


def _journey(journey_id: int):
    journey = journeys.get(journey_id)
    if journey is None:
        abort(404, f"no journey {journey_id}")
    return journey


def _document() -> dict:
    doc = request.get_json(silent=True)
    if not isinstance(doc, dict):
        abort(400, "the body must be a journey/v1 JSON object (Content-Type: application/json)")
    return doc


def _expected_revision() -> int | None:
    header = request.headers.get("If-Match", "").strip().strip('"')
    if not header:
        return None
    if not header.isdigit():
        abort(400, "If-Match must be the draft revision number you loaded")
    return int(header)


def _invalid(error: journeys.InvalidJourney):
    problems = [journeys.problem_json(problem) for problem in error.problems]
    return jsonify(error=str(error), problems=problems), 422


def _summary(journey) -> dict:
    status = journeys.status_of(journey)
    return {
        "id": journey.id,
        "name": journey.name,
        "status": status.status,
        "version": status.version,
        "revision": journey.draft_revision,
        "updated_at": iso_z(journey.updated_at),
    }
