"""Journey designer pages: the list, the editor (diagram, node and edge forms, problems, preview,
simulator) and versions.

Every edit is a small form posted with HTMX. The server applies it to the
stored draft (`journeys.save_draft_unchecked`: a draft may have errors while
it is being built) and answers with the changed panel plus out-of-band swaps
of the diagram, the node list, the problems and the revision, so the page
never reloads. Each save names the `draft_revision` it was based on; a stale
one is refused with 409 and the operator is told to reload, so two tabs never
overwrite each other silently. Publishing goes through `journeys.publish`,
which refuses a draft with errors.
"""

from __future__ import annotations

import json
import re

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import func, select

from app import engine
from app.engine import Problem
from app.engine.conditions import Context, compile_condition, condition_problems
from app.engine.nodes import NODE_TYPES
from app.engine.placeholders import PLACEHOLDER_RE, render, scope, sms_info
from app.extensions import db
from app.journeys import diagram, samples
from app.journeys import diff as journey_diff
from app.journeys import store as journeys
from app.models import Audience, AudienceContact, Contact, JourneyVersion, Run
from app.queues import get_redis
from app.runs import simulator

bp = Blueprint("journeys", __name__, url_prefix="/journeys")

NODE_TYPE_NAMES = ("audience", "message", "wait", "api", "delay", "split", "branch", "set", "end")
TYPE_KEYS = {
    "audience": ("where",),
    "message": ("body", "content_sid", "content_variables", "channel", "media_url"),
    "api": ("url", "method", "headers", "body", "timeout", "save_as"),
    "delay": ("duration",),
    "wait": ("timeout",),
    "set": ("vars",),
}
ALL_TYPE_KEYS = {key for keys in TYPE_KEYS.values() for key in keys}
CONDITION_KINDS = ("always", "keywords", "regex", "payload", "var", "fallback", "timeout", "success", "failure")
CONDITION_TITLES = {
    "always": "always",
    "keywords": "keywords",
    "regex": "pattern (regex)",
    "payload": "button payload",
    "var": "variable",
    "fallback": "else (fallback)",
    "timeout": "timeout",
    "success": "success",
    "failure": "failure",
}
OPS = ("eq", "ne", "contains", "gt", "gte", "lt", "lte", "exists", "regex")
NODE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
SAMPLE_LIMIT = 50


class Refused(Exception):
    """An edit that cannot be stored at all (a duplicate node id…): answered 422, nothing saved."""


# --- the list ---------------------------------------------------------------------------------------------


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
    return _redirect(url_for(".editor", journey_id=journey.id))


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
    return _redirect(url_for(".editor", journey_id=journey.id))


def _plain_problem(message: str) -> Problem:
    return Problem(severity="error", message=message)


def _import_refused(problems, name):
    grouped: dict[str, list] = {}
    for problem in problems:
        grouped.setdefault(problem.node_id or "", []).append(problem)
    return render_template("journeys/index.html", **_index_context(grouped, name)), 422


@bp.get("/<int:journey_id>/export")
def export(journey_id: int):
    journey = _journey(journey_id)
    version = request.args.get("version", type=int)
    source = _version(journey, version) if version else journey
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
    copy_of = journeys.duplicate(_journey(journey_id), user=current_user)
    flash(f"Created “{copy_of.name}”.", "success")
    return _redirect(url_for(".editor", journey_id=copy_of.id))


@bp.post("/<int:journey_id>/delete")
def delete(journey_id: int):
    journey = _journey(journey_id)
    name = journey.name
    try:
        journeys.delete(journey)
    except journeys.JourneyInUse:
        message = f"“{name}” has an active run: stop the run before deleting the journey."
        if request.headers.get("HX-Request"):
            return _banner(message), 409, {"HX-Retarget": "#list-message", "HX-Reswap": "innerHTML"}
        flash(message, "error")
        return redirect(url_for(".index")), 303
    flash(f"Deleted “{name}”.", "success")
    return _redirect(url_for(".index"))


# --- the editor -------------------------------------------------------------------------------------------


@bp.get("/<int:journey_id>")
def editor(journey_id: int):
    journey = _journey(journey_id)
    selected = request.args.get("node")
    return render_template("journeys/editor.html", **_editor_context(journey, selected=selected))


@bp.get("/<int:journey_id>/nodes/<node_id>")
def node_panel(journey_id: int, node_id: str):
    journey = _journey(journey_id)
    if request.headers.get("HX-Request"):
        return _updated(journey, selected=node_id, changed=False)
    return render_template("journeys/editor.html", **_editor_context(journey, selected=node_id))


@bp.get("/<int:journey_id>/settings")
def settings_panel(journey_id: int):
    return _updated(_journey(journey_id), selected=None, changed=False)


@bp.post("/<int:journey_id>/settings")
def save_settings(journey_id: int):
    def edit(doc):
        doc["name"] = request.form.get("name", "").strip()
        description = request.form.get("description", "").strip()
        if description:
            doc["description"] = description
        else:
            doc.pop("description", None)
        doc["channel"] = request.form.get("channel") or "sms"
        return None

    return _edit(journey_id, edit)


@bp.get("/<int:journey_id>/node-fields")
def node_fields(journey_id: int):
    """The type-specific fields for the type chosen in a node form (nothing saved)."""
    journey = _journey(journey_id)
    kind = request.args.get("type", "message")
    node = _find_node(journey.draft, request.args.get("node_id", "")) or {}
    if node.get("type") != kind:  # another type: keep the id, label and position, drop the old type's keys
        node = {**{key: value for key, value in node.items() if key not in ALL_TYPE_KEYS}, "type": kind}
    return render_template(
        "journeys/_partials/node_fields.html",
        node=node,
        journey=journey,
        doc=journey.draft,
        ops=OPS,
        summary=diagram.node_summary,
        **_preview_context(journey, node),
    )


@bp.post("/<int:journey_id>/nodes")
def add_node(journey_id: int):
    kind = request.form.get("type", "message")
    new_id = request.form.get("id", "").strip()

    def edit(doc):
        node_id = new_id or _free_id(doc, kind)
        _check_new_id(doc, node_id)
        node = _new_node(kind, node_id)
        doc["nodes"].append(node)
        source = request.form.get("after", "").strip()
        if source and _find_node(doc, source):
            doc["edges"].append({"from": source, "to": node_id})
        return node_id

    return _edit(journey_id, edit)


@bp.post("/<int:journey_id>/nodes/<node_id>")
def save_node(journey_id: int, node_id: str):
    return _edit(journey_id, lambda doc: _apply_node_form(doc, node_id, request.form))


@bp.post("/<int:journey_id>/nodes/<node_id>/check")
def check_node(journey_id: int, node_id: str):
    """Validate a node form as it is typed, without saving: the problems of this node."""
    doc = json.loads(json.dumps(_journey(journey_id).draft))
    try:
        checked_id = _apply_node_form(doc, node_id, request.form)
    except Refused as error:
        return render_template("journeys/_partials/node_check.html", problems=[_plain_problem(str(error))])
    problems = [problem for problem in journeys.problems_of(doc) if _concerns(problem, checked_id, doc)]
    return render_template("journeys/_partials/node_check.html", problems=problems)


@bp.post("/<int:journey_id>/nodes/<node_id>/delete")
def delete_node(journey_id: int, node_id: str):
    def edit(doc):
        doc["nodes"] = [node for node in doc["nodes"] if node.get("id") != node_id]
        doc["edges"] = [edge for edge in doc["edges"] if node_id not in (edge.get("from"), edge.get("to"))]
        return None

    return _edit(journey_id, edit)


@bp.post("/<int:journey_id>/nodes/<node_id>/edges")
def add_edge(journey_id: int, node_id: str):
    def edit(doc):
        if _find_node(doc, node_id) is None:
            raise Refused(f"node {node_id!r} no longer exists")
        edge = {"from": node_id, "to": request.form.get("to", "")}
        when = _condition_from_form(request.form)
        if when is not None:
            edge["when"] = when
        _weight_from_form(edge, request.form)
        doc["edges"].append(edge)
        return node_id

    return _edit(journey_id, edit)


@bp.post("/<int:journey_id>/edges/<int:index>")
def save_edge(journey_id: int, index: int):
    def edit(doc):
        edge = _edge_at(doc, index)
        edge["to"] = request.form.get("to", edge.get("to"))
        when = _condition_from_form(request.form)
        if when is None:
            edge.pop("when", None)
        else:
            edge["when"] = when
        _weight_from_form(edge, request.form)
        return edge.get("from")

    return _edit(journey_id, edit, edge_open=index)


@bp.post("/<int:journey_id>/edges/<int:index>/delete")
def delete_edge(journey_id: int, index: int):
    def edit(doc):
        edge = _edge_at(doc, index)
        doc["edges"].pop(index)
        return edge.get("from")

    return _edit(journey_id, edit)


@bp.post("/<int:journey_id>/edges/<int:index>/move")
def move_edge(journey_id: int, index: int):
    """Swap an edge with the previous (`up`) or next (`down`) edge of the same node: order is priority."""
    direction = request.form.get("direction", "up")

    def edit(doc):
        edge = _edge_at(doc, index)
        siblings = [i for i, other in enumerate(doc["edges"]) if other.get("from") == edge.get("from")]
        place = siblings.index(index)
        other = place - 1 if direction == "up" else place + 1
        if 0 <= other < len(siblings):
            a, b = index, siblings[other]
            doc["edges"][a], doc["edges"][b] = doc["edges"][b], doc["edges"][a]
        return edge.get("from")

    return _edit(journey_id, edit)


@bp.get("/<int:journey_id>/condition-fields")
def condition_fields(journey_id: int):
    """The fields of the condition kind chosen in an edge form (nothing saved)."""
    journey = _journey(journey_id)
    kind = request.args.get("kind", "always")
    prefix = request.args.get("prefix", "")
    when = _blank_condition(kind)
    return render_template(
        "journeys/_partials/condition_fields.html", journey=journey, when=when, kind=kind, prefix=prefix, ops=OPS
    )


@bp.post("/<int:journey_id>/try-regex")
def try_regex(journey_id: int):
    """The regex 'try it' box: does the engine's pattern match this reply?"""
    _journey(journey_id)
    pattern = request.form.get("regex", "")
    text = request.form.get("try", "")
    problems = condition_problems({"regex": pattern})
    if problems:
        return render_template("journeys/_partials/try_result.html", error="; ".join(problems))
    matched = compile_condition({"regex": pattern}).holds(Context(reply=text)) if text else None
    return render_template("journeys/_partials/try_result.html", matched=matched, text=text)


@bp.post("/<int:journey_id>/preview")
def preview(journey_id: int):
    """A message node's body rendered for the sample contact, as it is typed."""
    journey = _journey(journey_id)
    node = {"type": "message", "body": request.form.get("body", "")}
    if request.form.get("mode") == "template":
        node["content_sid"] = request.form.get("content_sid", "").strip() or "(no content SID)"
        try:
            node["content_variables"] = _pairs(request.form.get("content_variables", ""), "=")
        except Refused as error:
            return render_template("journeys/_partials/banner.html", message=f"Template variables: {error}")
    return render_template("journeys/_partials/preview.html", **_preview_context(journey, node))


@bp.post("/<int:journey_id>/sample")
def set_sample(journey_id: int):
    """Choose the sample contact: from an audience, or fields typed as `name = value` lines."""
    journey = _journey(journey_id)
    contact_id = request.form.get("contact_id", type=int)
    if contact_id and request.form.get("use") == "contact":
        contact = db.session.get(Contact, contact_id)
        if contact is not None:
            session[_sample_key(journey)] = samples.contact_fields(contact)
    else:
        try:
            session[_sample_key(journey)] = _pairs(request.form.get("fields", ""), "=")
        except Refused as error:
            return render_template(
                "journeys/_partials/sample.html", sample_error=str(error), **_sample_context(journey)
            ), 422
    response = Response(render_template("journeys/_partials/sample.html", **_sample_context(journey)))
    response.headers["HX-Trigger"] = "sample-changed"
    return response


@bp.get("/<int:journey_id>/sample")
def sample_panel(journey_id: int):
    journey = _journey(journey_id)
    return render_template("journeys/_partials/sample.html", **_sample_context(journey))


@bp.post("/<int:journey_id>/publish")
def publish(journey_id: int):
    journey = _journey(journey_id)
    revision = request.form.get("draft_revision", type=int)
    if revision is not None and revision != journey.draft_revision:
        return _conflict(journey)
    try:
        version = journeys.publish(journey, note=request.form.get("note", "").strip(), user=current_user)
    except journeys.InvalidJourney as error:
        count = len(error.problems)
        message = f"Not published: fix the {count} error{'s' if count != 1 else ''} listed under Problems first."
        return _banner(message), 422, {"HX-Retarget": "#conflict", "HX-Reswap": "innerHTML"}
    flash(f"Published version {version.number}.", "success")
    return _redirect(url_for(".editor", journey_id=journey.id))


# --- versions ---------------------------------------------------------------------------------------------


@bp.get("/<int:journey_id>/versions")
def versions(journey_id: int):
    journey = _journey(journey_id)
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
    journey = _journey(journey_id)
    old = _version(journey, number)
    svg = Markup(diagram.render_svg(old.definition))
    changes = journey_diff.diff(old.definition, journey.draft)
    return render_template(
        "journeys/version.html",
        journey=journey,
        version=old,
        svg=svg,
        definition=json.dumps(old.definition, indent=2, ensure_ascii=False),
        changes=changes,
    )


@bp.post("/<int:journey_id>/versions/<int:number>/restore")
def restore(journey_id: int, number: int):
    journey = _journey(journey_id)
    old = _version(journey, number)
    try:
        journeys.save_draft_unchecked(journey, old.definition, request.form.get("draft_revision", type=int))
    except journeys.StaleDraft:
        flash("The draft changed since you opened this page: nothing was restored. Look again and retry.", "error")
        return redirect(url_for(".version", journey_id=journey.id, number=number)), 303
    flash(f"Restored version {number} into the draft.", "success")
    return _redirect(url_for(".editor", journey_id=journey.id))


# --- the simulator ----------------------------------------------------------------------------------------


@bp.get("/<int:journey_id>/simulator")
def simulator_panel(journey_id: int):
    journey = _journey(journey_id)
    return _simulator_response(journey, _current_simulation(journey))


@bp.post("/<int:journey_id>/simulator")
def simulator_start(journey_id: int):
    journey = _journey(journey_id)
    problems = journeys.problems_of(journey.draft)
    if problems:
        return _simulator_response(journey, None, error="Fix the errors listed under Problems to simulate.")
    fields = dict(_sample(journey))
    simulation = simulator.start(
        get_redis(),
        journey.id,
        journey.draft,
        fields,
        real_api=request.form.get("api_mode") == "real",
        allow_private=current_app.config["API_NODE_ALLOW_PRIVATE"],
    )
    session[_simulation_key(journey)] = simulation.token
    return _simulator_response(journey, simulation)


@bp.post("/<int:journey_id>/simulator/<action>")
def simulator_act(journey_id: int, action: str):
    journey = _journey(journey_id)
    try:
        simulation = simulator.load(get_redis(), request.form.get("token", ""), journey.id)
    except simulator.SimulationGone as error:
        return _simulator_response(journey, None, error=str(error))
    problems = journeys.problems_of(journey.draft)
    if problems:
        return _simulator_response(journey, simulation, error="The draft has errors now: fix them to go on.")
    doc = journey.draft
    allow_private = current_app.config["API_NODE_ALLOW_PRIVATE"]
    if action == "reply":
        text = request.form.get("text", "")
        payload = request.form.get("payload") or None
        simulator.reply(simulation, doc, text or (payload or ""), payload, allow_private)
    elif action == "timer":
        simulator.fire_timer(simulation, doc, allow_private)
    elif action == "api":
        status = request.form.get("status", type=int)
        try:
            body = json.loads(request.form.get("body") or "null")
        except ValueError as error:
            return _simulator_response(journey, simulation, error=f"Response body: not JSON ({error}).")
        simulator.answer_api(simulation, doc, status, body, allow_private)
    else:
        abort(404)
    simulator.save(get_redis(), simulation)
    return _simulator_response(journey, simulation)


@bp.post("/<int:journey_id>/simulator-reset")
def simulator_reset(journey_id: int):
    journey = _journey(journey_id)
    session.pop(_simulation_key(journey), None)
    return _simulator_response(journey, None)


def _simulator_response(journey, simulation, error=None):
    doc = journey.draft
    body = render_template(
        "journeys/_partials/simulator.html",
        journey=journey,
        simulation=simulation,
        sim_error=error,
        buttons=simulator.expected_buttons(simulation, doc) if simulation else [],
        sample=_sample(journey),
    )
    body += render_template(
        "journeys/_partials/diagram.html", journey=journey, oob=True, svg=_svg(journey, doc, None, simulation)
    )
    return body


# --- helpers: loading, saving, answering ------------------------------------------------------------------


def _journey(journey_id: int):
    journey = journeys.get(journey_id)
    if journey is None:
        abort(404, f"no journey {journey_id}")
    return journey


def _version(journey, number: int) -> JourneyVersion:
    old = db.session.scalar(select(JourneyVersion).filter_by(journey_id=journey.id, number=number))
    if old is None:
        abort(404, f"journey {journey.id} has no version {number}")
    return old


def _redirect(url: str):
    """HTMX follows `HX-Redirect`; a plain form post gets a 303."""
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url}
    return redirect(url), 303


def _banner(message: str) -> str:
    return render_template("journeys/_partials/banner.html", message=message)


def _conflict(journey):
    """409: the draft moved on since this page loaded; the page must reload before saving again."""
    db.session.refresh(journey)
    body = render_template("journeys/_partials/conflict.html", journey=journey)
    return body, 409, {"HX-Retarget": "#conflict", "HX-Reswap": "innerHTML"}


def _edit(journey_id: int, change, edge_open: int | None = None):
    """Apply `change(doc) -> node id to show` to a copy of the draft; save it if based on the current revision."""
    journey = _journey(journey_id)
    revision = request.form.get("draft_revision", type=int)
    if revision is None:
        return (
            _banner("The form did not say which revision it edits: reload the page."),
            400,
            {"HX-Retarget": "#conflict", "HX-Reswap": "innerHTML"},
        )
    if revision != journey.draft_revision:
        return _conflict(journey)
    doc = json.loads(json.dumps(journey.draft))
    doc.setdefault("nodes", [])
    doc.setdefault("edges", [])
    try:
        selected = change(doc)
    except Refused as error:
        return _banner(str(error)), 422, {"HX-Retarget": "#conflict", "HX-Reswap": "innerHTML"}
    try:
        journeys.save_draft_unchecked(journey, doc, revision)
    except journeys.StaleDraft:
        return _conflict(journey)
    except journeys.InvalidJourney as error:
        return (
            _banner("; ".join(problem.message for problem in error.problems)),
            422,
            {"HX-Retarget": "#conflict", "HX-Reswap": "innerHTML"},
        )
    db.session.refresh(journey)
    return _updated(journey, selected=selected, changed=True, edge_open=edge_open)


def _updated(journey, *, selected: str | None, changed: bool, edge_open: int | None = None):
    """The side panel for `selected` (or the journey settings), with the rest of the editor out of band."""
    context = _editor_context(journey, selected=selected, edge_open=edge_open)
    parts = [render_template("journeys/_partials/panel.html", **context)]
    parts.append(render_template("journeys/_partials/diagram.html", oob=True, **context))
    parts.append(render_template("journeys/_partials/node_list.html", oob=True, **context))
    parts.append(render_template("journeys/_partials/add_node.html", oob=True, **context))
    if changed:
        parts.append(render_template("journeys/_partials/problems.html", oob=True, **context))
        parts.append(render_template("journeys/_partials/header_status.html", oob=True, **context))
    return "".join(parts)


def _editor_context(journey, *, selected: str | None, edge_open: int | None = None) -> dict:
    doc = journey.draft
    node = _find_node(doc, selected) if selected else None
    sample = _sample(journey)
    errors = journeys.problems_of(doc)
    warnings = engine.lint(engine.parse(doc), sample_fields=sample or None) if not errors else []
    simulation = _current_simulation(journey)
    nodes = [item for item in doc.get("nodes", []) if isinstance(item, dict)]
    context = {
        "journey": journey,
        "doc": doc,
        "node": node,
        "selected": node.get("id") if node else None,
        "nodes": nodes,
        "errors": errors,
        "warnings": warnings,
        "status": journeys.status_of(journey),
        "svg": _svg(journey, doc, node.get("id") if node else None, simulation),
        "edge_open": edge_open,
        "node_types": NODE_TYPE_NAMES,
        "conditions": CONDITION_KINDS,
        "condition_titles": CONDITION_TITLES,
        "ops": OPS,
        "simulation": simulation,
        "sample": sample,
        "buttons": simulator.expected_buttons(simulation, doc) if simulation else [],
        "summary": diagram.node_summary,
    }
    if node is not None:
        context["outgoing"] = [
            (index, edge)
            for index, edge in enumerate(doc.get("edges", []))
            if isinstance(edge, dict) and edge.get("from") == node.get("id")
        ]
        context["allowed_conditions"] = _allowed_conditions(node.get("type"))
        context.update(_preview_context(journey, node))
    context.update(_sample_context(journey))
    return context


def _svg(journey, doc, selected, simulation) -> Markup:
    link = url_for(".node_panel", journey_id=journey.id, node_id="NODE").replace("NODE", "{id}")
    path = simulation.path if simulation else None
    taken = simulation.edges if simulation else None
    return Markup(diagram.render_svg(doc, selected=selected, path=path, path_edges=taken, link_template=link))


def _current_simulation(journey):
    token = session.get(_simulation_key(journey))
    if not token:
        return None
    try:
        return simulator.load(get_redis(), token, journey.id)
    except simulator.SimulationGone:
        return None


def _simulation_key(journey) -> str:
    return f"simulation:{journey.id}"


def _allowed_conditions(kind) -> list[str]:
    node_type = NODE_TYPES.get(kind)
    allowed = node_type.conditions if node_type else frozenset(CONDITION_KINDS)
    return [name for name in CONDITION_KINDS if name in allowed]


def _concerns(problem, node_id: str, doc: dict) -> bool:
    if problem.node_id == node_id:
        return True
    if problem.edge_index is not None:
        edges = doc.get("edges", [])
        return 0 <= problem.edge_index < len(edges) and edges[problem.edge_index].get("from") == node_id
    return False


# --- helpers: the sample contact and the preview ----------------------------------------------------------


def _sample_key(journey) -> str:
    return f"sample:{journey.id}"


def _sample(journey) -> dict:
    """The sample contact chosen in this session, else the first audience contact with the journey's fields."""
    chosen = session.get(_sample_key(journey))
    return chosen if chosen is not None else samples.default_sample(journey.draft)


def _sample_context(journey) -> dict:
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
    sample = _sample(journey)
    return {
        "journey": journey,
        "audiences": audiences,
        "audience_id": audience_id,
        "sample_contacts": contacts,
        "sample": sample,
        "sample_text": "\n".join(f"{key} = {value}" for key, value in sample.items()),
    }


def _preview_context(journey, node: dict) -> dict:
    sample = _sample(journey)
    if node.get("type") != "message":
        return {"preview": None, "sample": sample}
    variables = scope(sample)
    if node.get("content_sid"):
        variables_of = node.get("content_variables") or {}
        rendered = {name: render(str(value), variables) for name, value in variables_of.items()}
        return {
            "sample": sample,
            "preview": {
                "template": True,
                "content_sid": node["content_sid"],
                "variables": [(name, item.text, item.missing) for name, item in rendered.items()],
            },
        }
    body = str(node.get("body") or "")
    text = render(body, variables).text
    info = sms_info(text)
    return {
        "sample": sample,
        "preview": {
            "template": False,
            "html": _highlight_missing(body, variables),
            "text": text,
            "missing": render(body, variables).missing,
            "encoding": info.encoding,
            "characters": info.characters,
            "segments": info.segments,
        },
    }


def _highlight_missing(body: str, variables: dict) -> Markup:
    """The rendered body as HTML, each placeholder with no value shown marked by its name."""
    out, last = [], 0
    for match in PLACEHOLDER_RE.finditer(body):
        out.append(escape(body[last : match.start()]))
        rendered = render(match.group(0), variables)
        if rendered.missing:
            out.append(
                Markup('<mark class="pill-missing" title="no value for this contact">«{}»</mark>').format(
                    rendered.missing[0]
                )
            )
        else:
            out.append(escape(rendered.text))
        last = match.end()
    out.append(escape(body[last:]))
    return Markup("").join(out)


# --- helpers: editing the document ------------------------------------------------------------------------


def _find_node(doc: dict, node_id: str | None) -> dict | None:
    return next((node for node in doc.get("nodes", []) if isinstance(node, dict) and node.get("id") == node_id), None)


def _edge_at(doc: dict, index: int) -> dict:
    edges = doc.get("edges", [])
    if not 0 <= index < len(edges) or not isinstance(edges[index], dict):
        raise Refused(f"edge {index} no longer exists")
    return edges[index]


def _apply_node_form(doc: dict, node_id: str, form) -> str:
    """Replace the node with what its form says (a new id renames it, its edges follow); return its id."""
    old = _find_node(doc, node_id)
    if old is None:
        raise Refused(f"node {node_id!r} no longer exists")
    new_id = form.get("id", node_id).strip()
    if new_id != node_id:
        _check_new_id(doc, new_id)
        _rename(doc, node_id, new_id)
    doc["nodes"][doc["nodes"].index(old)] = _node_from_form(old, new_id, form)
    return new_id


def _check_new_id(doc: dict, node_id: str) -> None:
    if not NODE_ID_RE.match(node_id):
        raise Refused(f"node id {node_id!r}: use 1 to 64 letters, digits, _ or -")
    if _find_node(doc, node_id) is not None:
        raise Refused(f"there is already a node {node_id!r}")


def _free_id(doc: dict, kind: str) -> str:
    number = 1
    while _find_node(doc, f"{kind}{number}") is not None:
        number += 1
    return f"{kind}{number}"


def _rename(doc: dict, old: str, new: str) -> None:
    """Give a node a new id; its edges follow."""
    for edge in doc.get("edges", []):
        if edge.get("from") == old:
            edge["from"] = new
        if edge.get("to") == old:
            edge["to"] = new


def _new_node(kind: str, node_id: str) -> dict:
    node = {"id": node_id, "type": kind}
    if kind == "message":
        node["body"] = ""
    elif kind == "api":
        node["url"] = ""
    elif kind == "delay":
        node["duration"] = "1h"
    elif kind == "set":
        node["vars"] = {}
    return node


def _node_from_form(old: dict, node_id: str, form) -> dict:
    """The node a node form describes; keys the form does not know (position…) are kept."""
    kind = form.get("type", old.get("type"))
    node = {key: value for key, value in old.items() if key not in ALL_TYPE_KEYS and key not in ("id", "type", "label")}
    node = {"id": node_id, "type": kind, **node}
    label = form.get("label", "").strip()
    if label:
        node["label"] = label
    if kind == "audience":
        var = form.get("where_var", "").strip()
        if var:
            node["where"] = _var_condition(var, form.get("where_op", "eq"), form.get("where_value", ""))
    elif kind == "message":
        channel = form.get("channel", "")
        if channel:
            node["channel"] = channel
        if form.get("mode") == "template":
            node["content_sid"] = form.get("content_sid", "").strip()
            variables = _pairs(form.get("content_variables", ""), "=")
            if variables:
                node["content_variables"] = variables
        else:
            node["body"] = form.get("body", "")
        media = form.get("media_url", "").strip()
        if media:
            node["media_url"] = media
    elif kind == "api":
        node["url"] = form.get("url", "").strip()
        node["method"] = form.get("method", "GET")
        headers = _pairs(form.get("headers", ""), ":")
        if headers:
            node["headers"] = headers
        body = form.get("body", "")
        if body.strip():
            node["body"] = _json_or_text(body)
        timeout = form.get("timeout", "").strip()
        if timeout:
            node["timeout"] = _number(timeout, "timeout")
        save_as = form.get("save_as", "").strip()
        if save_as:
            node["save_as"] = save_as
    elif kind == "delay":
        node["duration"] = _duration(form.get("duration", ""))
    elif kind == "wait":
        timeout = form.get("timeout", "").strip()
        if timeout:
            node["timeout"] = _duration(timeout)
    elif kind == "set":
        node["vars"] = _pairs(form.get("vars", ""), "=")
    return node


def _pairs(text: str, separator: str) -> dict:
    """`name = value` lines (or `Name: value` for headers) as a dict; blank lines are skipped."""
    pairs = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, found, value = line.partition(separator)
        if not found or not name.strip():
            raise Refused(f"line {number} ({line.strip()!r}): write it as name {separator} value")
        pairs[name.strip()] = value.strip()
    return pairs


def _json_or_text(text: str):
    """An API body: JSON when it parses as an object or a list, else the text as a template."""
    stripped = text.strip()
    if stripped[:1] in "{[":
        try:
            return json.loads(stripped)
        except ValueError as error:
            raise Refused(f"API body looks like JSON but is not valid: {error}") from None
    return text


def _number(text: str, what: str):
    try:
        value = float(text)
    except ValueError:
        raise Refused(f"{what} {text!r} is not a number") from None
    return int(value) if value.is_integer() else value


def _duration(text: str):
    text = text.strip()
    return int(text) if text.isdigit() else text


def _var_condition(var: str, op: str, value: str) -> dict:
    condition = {"var": var.strip(), "op": op}
    if op != "exists":
        condition["value"] = value
    return condition


def _blank_condition(kind: str):
    return {
        "keywords": {"keywords": []},
        "regex": {"regex": ""},
        "payload": {"payload": ""},
        "var": {"var": "", "op": "eq", "value": ""},
    }.get(kind, kind)


def _condition_from_form(form):
    """The `when` an edge form describes (None = unconditional). Keywords are a tag list."""
    kind = form.get("kind", "always")
    if kind == "always":
        return None
    if kind in ("fallback", "timeout", "success", "failure"):
        return kind
    if kind == "keywords":
        keywords = [word for word in form.getlist("keywords") if word.strip()]
        removed = form.get("remove_keyword")
        if removed is not None:
            keywords = [word for word in keywords if word != removed]
        for word in form.get("new_keyword", "").split(","):
            if word.strip() and word.strip() not in keywords:
                keywords.append(word.strip())
        return {"keywords": keywords}
    if kind == "regex":
        return {"regex": form.get("regex", "")}
    if kind == "payload":
        return {"payload": form.get("payload", "").strip()}
    if kind == "var":
        return _var_condition(form.get("var", ""), form.get("op", "eq"), form.get("value", ""))
    raise Refused(f"unknown condition {kind!r}")


def _weight_from_form(edge: dict, form) -> None:
    weight = form.get("weight", "").strip()
    if not weight:
        edge.pop("weight", None)
        return
    value = _number(weight, "weight")
    edge["weight"] = value
