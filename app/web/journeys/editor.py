"""The editor page and its forms: journey settings, nodes, edges, condition fields, the regex tester
and the message preview. Every change goes through `common.edit` and `app.journeys.editing`."""

from __future__ import annotations

import json

from flask import render_template, request

from app.engine import Problem
from app.engine.conditions import Context, compile_condition, condition_problems
from app.journeys import editing
from app.journeys import store as journeys
from app.journeys.forms import pairs
from app.journeys.kinds import CONDITION_KINDS
from app.web import htmx
from app.web.journeys import bp
from app.web.journeys.common import concerns, edit, editor_context, load_journey, preview_context, updated


@bp.get("/<int:journey_id>")
def editor(journey_id: int):
    journey = load_journey(journey_id)
    selected = request.args.get("node")
    return render_template("journeys/editor.html", **editor_context(journey, selected=selected))


@bp.get("/<int:journey_id>/nodes/<node_id>")
def node_panel(journey_id: int, node_id: str):
    journey = load_journey(journey_id)
    if htmx.wants_fragment():
        return updated(journey, selected=node_id, changed=False)
    return render_template("journeys/editor.html", **editor_context(journey, selected=node_id))


@bp.get("/<int:journey_id>/settings")
def settings_panel(journey_id: int):
    return updated(load_journey(journey_id), selected=None, changed=False)


@bp.post("/<int:journey_id>/settings")
def save_settings(journey_id: int):
    """Save the settings; the simulator listens for `settings-changed` (triggers add a way to start it)."""
    answer = edit(journey_id, lambda doc: editing.apply_settings(doc, request.form))
    return htmx.trigger(answer, "settings-changed") if isinstance(answer, str) else answer


@bp.get("/<int:journey_id>/node-fields")
def node_fields(journey_id: int):
    """The type-specific fields for the type chosen in a node form (nothing saved)."""
    journey = load_journey(journey_id)
    kind = request.args.get("type", "message")
    node = editing.find_node(journey.draft, request.args.get("node_id", "")) or {}
    node = editing.switch_type(node, kind)
    return render_template(
        "journeys/_partials/node_fields.html",
        node=node,
        journey=journey,
        doc=journey.draft,
        **preview_context(journey, node),
    )


@bp.post("/<int:journey_id>/nodes")
def add_node(journey_id: int):
    kind = request.form.get("type", "message")
    node_id = request.form.get("id", "").strip()
    after = request.form.get("after", "").strip()
    return edit(journey_id, lambda doc: editing.add_node(doc, kind, node_id, after))


@bp.post("/<int:journey_id>/nodes/<node_id>")
def save_node(journey_id: int, node_id: str):
    return edit(journey_id, lambda doc: editing.apply_node_form(doc, node_id, request.form))


@bp.post("/<int:journey_id>/nodes/<node_id>/check")
def check_node(journey_id: int, node_id: str):
    """Validate a node form as it is typed, without saving: the problems of this node."""
    doc = json.loads(json.dumps(load_journey(journey_id).draft))
    try:
        checked_id = editing.apply_node_form(doc, node_id, request.form)
    except editing.Refused as error:
        return render_template("journeys/_partials/node_check.html", problems=[_plain_problem(str(error))])
    problems = [problem for problem in journeys.problems_of(doc) if concerns(problem, checked_id, doc)]
    return render_template("journeys/_partials/node_check.html", problems=problems)


def _plain_problem(message: str) -> Problem:
    return Problem(severity="error", message=message)


@bp.post("/<int:journey_id>/nodes/<node_id>/delete")
def delete_node(journey_id: int, node_id: str):
    return edit(journey_id, lambda doc: editing.delete_node(doc, node_id))


@bp.post("/<int:journey_id>/nodes/<node_id>/edges")
def add_edge(journey_id: int, node_id: str):
    return edit(journey_id, lambda doc: editing.add_edge(doc, node_id, request.form))


@bp.post("/<int:journey_id>/edges/<int:index>")
def save_edge(journey_id: int, index: int):
    return edit(journey_id, lambda doc: editing.save_edge(doc, index, request.form), edge_open=index)


@bp.post("/<int:journey_id>/edges/<int:index>/delete")
def delete_edge(journey_id: int, index: int):
    return edit(journey_id, lambda doc: editing.delete_edge(doc, index))


@bp.post("/<int:journey_id>/edges/<int:index>/move")
def move_edge(journey_id: int, index: int):
    """Swap an edge with the previous (`up`) or next (`down`) edge of the same node: order is priority."""
    direction = request.form.get("direction", "up")
    return edit(journey_id, lambda doc: editing.move_edge(doc, index, direction))


@bp.get("/<int:journey_id>/condition-fields")
def condition_fields(journey_id: int):
    """The fields of the condition kind chosen in an edge form (nothing saved)."""
    journey = load_journey(journey_id)
    kind = request.args.get("kind", "always")
    prefix = request.args.get("prefix", "")
    when = CONDITION_KINDS[kind].blank if kind in CONDITION_KINDS else kind
    return render_template(
        "journeys/_partials/condition_fields.html", journey=journey, when=when, kind=kind, prefix=prefix
    )


@bp.post("/<int:journey_id>/try-regex")
def try_regex(journey_id: int):
    """The regex 'try it' box: does the engine's pattern match this reply?"""
    load_journey(journey_id)
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
    journey = load_journey(journey_id)
    node = {"type": "message", "body": request.form.get("body", "")}
    if request.form.get("mode") == "template":
        node["content_sid"] = request.form.get("content_sid", "").strip() or "(no content SID)"
        try:
            node["content_variables"] = pairs(request.form.get("content_variables", ""), "=")
        except editing.Refused as error:
            return render_template("journeys/_partials/banner.html", message=f"Template variables: {error}")
    return render_template("journeys/_partials/preview.html", **preview_context(journey, node))
