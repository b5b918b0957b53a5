"""Publishing the draft, the version history with diffs, and restoring an old version into the draft."""

from __future__ import annotations

import json

from flask import current_app, flash, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from app.journeys import diagram
from app.journeys import diff as journey_diff
from app.journeys import store as journeys
from app.runs import listening
from app.web import htmx
from app.web.journeys import bp
from app.web.journeys.common import conflict, load_journey, load_version, refuse


@bp.post("/<int:journey_id>/publish")
def publish(journey_id: int):
    journey = load_journey(journey_id)
    revision = request.form.get("draft_revision", type=int)
    if revision is not None and revision != journey.draft_revision:
        return conflict(journey)
    try:
        version = journeys.publish(journey, note=request.form.get("note", "").strip(), user=current_user)
    except journeys.TriggerConflict as error:
        return refuse("Not published: " + "; ".join(problem.message for problem in error.problems) + ".", 409)
    except journeys.InvalidJourney as error:
        count = len(error.problems)
        return refuse(
            f"Not published: fix the {count} error{'s' if count != 1 else ''} listed under Problems first.", 422
        )
    listening_run = listening.sync(
        journey, version, arm=True, user=current_user, dry_run=bool(current_app.config.get("DRY_RUN"))
    )
    flash(
        f"Published version {version.number}."
        + (" Its keyword triggers are listening." if listening_run is not None else ""),
        "success",
    )
    return htmx.redirect(url_for(".editor", journey_id=journey.id))


@bp.get("/<int:journey_id>/versions")
def versions(journey_id: int):
    journey = load_journey(journey_id)
    rows = []
    previous = None
    for version in journey.versions:
        changes = journey_diff.diff(previous.definition, version.definition) if previous else None
        rows.append((version, changes))
        previous = version
    draft_changes = journey_diff.diff(previous.definition, journey.draft) if previous else None
    return render_template(
        "journeys/versions.html", journey=journey, rows=list(reversed(rows)), draft_changes=draft_changes
    )


@bp.get("/<int:journey_id>/versions/<int:number>")
def version(journey_id: int, number: int):
    journey = load_journey(journey_id)
    old = load_version(journey, number)
    return render_template(
        "journeys/version.html",
        journey=journey,
        version=old,
        svg=Markup(diagram.render_svg(old.definition)),
        definition=json.dumps(old.definition, indent=2, ensure_ascii=False),
        changes=journey_diff.diff(old.definition, journey.draft),
    )


@bp.post("/<int:journey_id>/versions/<int:number>/restore")
def restore(journey_id: int, number: int):
    journey = load_journey(journey_id)
    old = load_version(journey, number)
    try:
        journeys.save_draft_unchecked(journey, old.definition, request.form.get("draft_revision", type=int))
    except journeys.StaleDraft:
        flash("The draft changed since you opened this page: nothing was restored. Look again and retry.", "error")
        return htmx.redirect(url_for(".version", journey_id=journey.id, number=number))
    flash(f"Restored version {number} into the draft.", "success")
    return htmx.redirect(url_for(".editor", journey_id=journey.id))
