"""The sample contact the preview, lint and simulator use: from an audience, or typed `name = value` lines."""

from __future__ import annotations

from flask import render_template, request

from app.extensions import db
from app.journeys.forms import Refused, pairs
from app.journeys.samples import contact_fields
from app.models import Contact
from app.web import htmx
from app.web.journeys import bp
from app.web.journeys.common import load_journey, sample_context, store_sample


@bp.post("/<int:journey_id>/sample")
def set_sample(journey_id: int):
    """Choose the sample contact: from an audience, or fields typed as `name = value` lines."""
    journey = load_journey(journey_id)
    contact_id = request.form.get("contact_id", type=int)
    if contact_id and request.form.get("use") == "contact":
        contact = db.session.get(Contact, contact_id)
        if contact is not None:
            store_sample(journey, contact_fields(contact))
    else:
        try:
            store_sample(journey, pairs(request.form.get("fields", ""), "="))
        except Refused as error:
            return render_template(
                "journeys/_partials/sample.html", sample_error=str(error), **sample_context(journey)
            ), 422
    return htmx.trigger(render_template("journeys/_partials/sample.html", **sample_context(journey)), "sample-changed")


@bp.get("/<int:journey_id>/sample")
def sample_panel(journey_id: int):
    journey = load_journey(journey_id)
    return render_template("journeys/_partials/sample.html", **sample_context(journey))
