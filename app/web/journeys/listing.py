"""The journey list: create, import, export, duplicate and delete journeys."""

from __future__ import annotations

import json
import re

from flask import Response, flash, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from app.engine import Problem
from app.extensions import db
from app.journeys import store as journeys
from app.models import Run
from app.web import htmx
from app.web.journeys import bp
from app.web.journeys.common import banner, load_journey, load_version


@bp.get("/")
def index():
    return render_template("journeys/index.html", **_index_context())


def _index_context(import_problems=None, import_name=None) -> dict:
    rows = journeys.all_journeys()
    runs = dict(db.session.execute(select(Run.journey_id, func.count()).group_by(Run.journey_id)).all())
    return {
        "rows": [(journey, journeys.status_of(journey), runs.get(journey.id, 0)) for journey in rows],
        "import_problems": import_problems,
        "import_name": import_name,
    }


@bp.post("/new")
def create():
    name = request.form.get("name", "").strip() or journeys.UNTITLED
    doc = {
        "format": "journey/v1",
        "name": name[: journeys.NAME_MAX],
        "channel": "sms",
        "nodes": [{"id": "start", "type": "audience"}, {"id": "done", "type": "end"}],
        "edges": [{"from": "start", "to": "done"}],
    }
    journey = journeys.create_journey(doc, user=current_user)
    return htmx.redirect(url_for(".editor", journey_id=journey.id))


@bp.post("/import")
def import_file():
    upload = request.files.get("file")
    name = upload.filename if upload else None
    try:
        doc = json.loads(upload.read().decode("utf-8-sig")) if upload and upload.filename else None
    except (UnicodeDecodeError, ValueError) as error:
        return _import_refused([_plain_problem(f"not a JSON file: {error}")], name)
    if doc is None:
        return _import_refused([_plain_problem("choose a journey/v1 JSON file to import")], name)
    try:
        journey = journeys.import_document(doc)
    except journeys.InvalidJourney as error:
        return _import_refused(error.problems, name)
    flash(f"Imported “{journey.name}”.", "success")
    return htmx.redirect(url_for(".editor", journey_id=journey.id))


def _plain_problem(message: str) -> Problem:
    return Problem(severity="error", message=message)


def _import_refused(problems, name):
    grouped: dict[str, list] = {}
    for problem in problems:
        grouped.setdefault(problem.node_id or "", []).append(problem)
    return render_template("journeys/index.html", **_index_context(grouped, name)), 422


@bp.get("/<int:journey_id>/export")
def export(journey_id: int):
    journey = load_journey(journey_id)
    version = request.args.get("version", type=int)
    source = load_version(journey, version) if version else journey
    body = json.dumps(journeys.export_document(source), indent=2, ensure_ascii=False)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", journey.name).strip("-").lower() or "journey"
    suffix = f"-v{version}" if version else ""
    return Response(
        body + "\n",
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{slug}{suffix}.json"'},
    )


@bp.post("/<int:journey_id>/duplicate")
def duplicate(journey_id: int):
    copy_of = journeys.duplicate(load_journey(journey_id), user=current_user)
    flash(f"Created “{copy_of.name}”.", "success")
    return htmx.redirect(url_for(".editor", journey_id=copy_of.id))


@bp.post("/<int:journey_id>/delete")
def delete(journey_id: int):
    journey = load_journey(journey_id)
    name = journey.name
    try:
        journeys.delete(journey)
    except journeys.JourneyInUse:
        message = f"“{name}” has an active run: stop the run before deleting the journey."
        if htmx.wants_fragment():
            return htmx.refuse(banner(message), 409, "#list-message")
        flash(message, "error")
        return htmx.redirect(url_for(".index"))
    flash(f"Deleted “{name}”.", "success")
    return htmx.redirect(url_for(".index"))
