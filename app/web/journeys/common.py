"""What the designer's views share: loading, the edit-and-save cycle, the editor's context, answers."""

from __future__ import annotations

import json

from flask import abort, render_template, request, session, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from app import engine
from app.engine.conditions import OPS
from app.extensions import db
from app.journeys import diagram, editing, samples
from app.journeys import store as journeys
from app.journeys.kinds import CONDITION_KINDS, NODE_KINDS, allowed_conditions, condition_kind_name, node_kind
from app.journeys.settings import SECTIONS, trigger_keywords
from app.models import Audience, AudienceContact, Contact, JourneyVersion
from app.queues import get_redis
from app.runs import simulator
from app.web import htmx

SAMPLE_LIMIT = 50
MESSAGE_TARGET = "#conflict"


def designer_globals() -> dict:
    """The registries and helpers every designer template may use."""
    return {
        "node_kinds": NODE_KINDS,
        "node_kind": node_kind,
        "condition_kinds": CONDITION_KINDS,
        "condition_kind_name": condition_kind_name,
        "settings_sections": SECTIONS,
        "trigger_keywords": trigger_keywords,
        "ops": OPS,
        "summary": diagram.node_summary,
    }


def load_journey(journey_id: int):
    journey = journeys.get(journey_id)
    if journey is None:
        abort(404, f"no journey {journey_id}")
    return journey


def load_version(journey, number: int) -> JourneyVersion:
    old = db.session.scalar(select(JourneyVersion).filter_by(journey_id=journey.id, number=number))
    if old is None:
        abort(404, f"journey {journey.id} has no version {number}")
    return old


def banner(message: str) -> str:
    return render_template("journeys/_partials/banner.html", message=message)


def refuse(message: str, status: int):
    """The editor's message area shows why nothing was saved."""
    return htmx.refuse(banner(message), status, MESSAGE_TARGET)


def conflict(journey):
    """409: the draft moved on since this page loaded; the page must reload before saving again."""
    db.session.refresh(journey)
    return htmx.refuse(render_template("journeys/_partials/conflict.html", journey=journey), 409, MESSAGE_TARGET)


def edit(journey_id: int, change, edge_open: int | None = None):
    """Apply `change(doc) -> node id to show` to a copy of the draft; save it if based on the current revision."""
    journey = load_journey(journey_id)
    revision = request.form.get("draft_revision", type=int)
    if revision is None:
        return refuse("The form did not say which revision it edits: reload the page.", 400)
    if revision != journey.draft_revision:
        return conflict(journey)
    doc = json.loads(json.dumps(journey.draft))
    doc.setdefault("nodes", [])
    doc.setdefault("edges", [])
    try:
        selected = change(doc)
    except editing.Refused as error:
        return refuse(str(error), 422)
    try:
        journeys.save_draft_unchecked(journey, doc, revision)
    except journeys.StaleDraft:
        return conflict(journey)
    except journeys.InvalidJourney as error:
        return refuse("; ".join(problem.message for problem in error.problems), 422)
    db.session.refresh(journey)
    return updated(journey, selected=selected, changed=True, edge_open=edge_open)


def updated(journey, *, selected: str | None, changed: bool, edge_open: int | None = None) -> str:
    """The side panel for `selected` (or the journey settings), with the rest of the editor out of band."""
    context = editor_context(journey, selected=selected, edge_open=edge_open)
    parts = [render_template("journeys/_partials/panel.html", **context)]
    parts.append(render_template("journeys/_partials/diagram.html", oob=True, **context))
    parts.append(render_template("journeys/_partials/node_list.html", oob=True, **context))
    parts.append(render_template("journeys/_partials/add_node.html", oob=True, **context))
    if changed:
        parts.append(render_template("journeys/_partials/problems.html", oob=True, **context))
        parts.append(render_template("journeys/_partials/header_status.html", oob=True, **context))
    return "".join(parts)


def editor_context(journey, *, selected: str | None, edge_open: int | None = None) -> dict:
    doc = journey.draft
    node = editing.find_node(doc, selected) if selected else None
    sample = sample_of(journey)
    errors = journeys.problems_of(doc)
    warnings = engine.lint(engine.parse(doc), sample_fields=sample or None) if not errors else []
    simulation = current_simulation(journey)
    context = {
        "journey": journey,
        "doc": doc,
        "node": node,
        "selected": node.get("id") if node else None,
        "nodes": [item for item in doc.get("nodes", []) if isinstance(item, dict)],
        "errors": errors,
        "warnings": warnings,
        "status": journeys.status_of(journey),
        "svg": svg(journey, doc, node.get("id") if node else None, simulation),
        "edge_open": edge_open,
        "simulation": simulation,
        "sample": sample,
        "buttons": simulator.expected_buttons(simulation, doc) if simulation else [],
    }
    if node is not None:
        context["outgoing"] = [
            (index, edge)
            for index, edge in enumerate(doc.get("edges", []))
            if isinstance(edge, dict) and edge.get("from") == node.get("id")
        ]
        context["allowed_conditions"] = allowed_conditions(node.get("type"))
        context.update(preview_context(journey, node))
    context.update(sample_context(journey))
    return context


def svg(journey, doc, selected, simulation) -> Markup:
    link = url_for("journeys.node_panel", journey_id=journey.id, node_id="NODE").replace("NODE", "{id}")
    path = simulation.path if simulation else None
    taken = simulation.edges if simulation else None
    return Markup(diagram.render_svg(doc, selected=selected, path=path, path_edges=taken, link_template=link))


def current_simulation(journey):
    token = session.get(simulation_key(journey))
    if not token:
        return None
    try:
        return simulator.load(get_redis(), token, journey.id)
    except simulator.SimulationGone:
        return None


def simulation_key(journey) -> str:
    return f"simulation:{journey.id}"


def concerns(problem, node_id: str, doc: dict) -> bool:
    """Whether a problem is about this node or one of its edges out."""
    if problem.node_id == node_id:
        return True
    if problem.edge_index is not None:
        edges = doc.get("edges", [])
        return 0 <= problem.edge_index < len(edges) and edges[problem.edge_index].get("from") == node_id
    return False


# --- the sample contact and the preview ---------------------------------------------------------------------


SAMPLE_TTL_SECONDS = 30 * 24 * 3600


def sample_key(journey) -> str:
    """The sample contact is personal data: kept server-side (Redis) per user and journey, not in the cookie."""
    return f"jd:sample:{current_user.id}:{journey.id}"


def store_sample(journey, fields: dict) -> None:
    get_redis().set(sample_key(journey), json.dumps(fields), ex=SAMPLE_TTL_SECONDS)


def sample_of(journey) -> dict:
    """The sample contact chosen by this user (kept in Redis), else the first audience contact with the journey's fields."""
    stored = get_redis().get(sample_key(journey))
    return json.loads(stored) if stored is not None else samples.default_sample(journey.draft)


def sample_context(journey) -> dict:
    audiences = db.session.execute(select(Audience.id, Audience.name).order_by(Audience.id.desc())).all()
    # The newest audience's contacts are listed at once: picking a sample contact is one choice.
    audience_id = request.values.get("audience_id", type=int) or (audiences[0].id if audiences else None)
    contacts = []
    if audience_id:
        contacts = db.session.execute(
            select(Contact.id, Contact.phone, Contact.name)
            .join(AudienceContact, AudienceContact.contact_id == Contact.id)
            .where(AudienceContact.audience_id == audience_id)
            .order_by(Contact.id)
            .limit(SAMPLE_LIMIT)
        ).all()
    sample = sample_of(journey)
    return {
        "journey": journey,
        "audiences": audiences,
        "audience_id": audience_id,
        "sample_contacts": contacts,
        "sample": sample,
        "sample_text": "\n".join(f"{key} = {value}" for key, value in sample.items()),
    }


def preview_context(journey, node: dict) -> dict:
    sample = sample_of(journey)
    return {"sample": sample, "preview": node_kind(node.get("type")).preview(node, sample)}
