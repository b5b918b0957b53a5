"""The simulator panel: one pretend contact walks the draft; replies, timers and API answers are typed in."""

from __future__ import annotations

import json

from flask import abort, current_app, render_template, request, session

from app.journeys import store as journeys
from app.queues import get_redis
from app.runs import simulator
from app.web.journeys import bp
from app.web.journeys.common import current_simulation, load_journey, sample_of, simulation_key, svg


@bp.get("/<int:journey_id>/simulator")
def simulator_panel(journey_id: int):
    journey = load_journey(journey_id)
    return _simulator_response(journey, current_simulation(journey))


@bp.post("/<int:journey_id>/simulator")
def simulator_start(journey_id: int):
    journey = load_journey(journey_id)
    if journeys.problems_of(journey.draft):
        return _simulator_response(journey, None, error="Fix the errors listed under Problems to simulate.")
    trigger_text = request.form.get("trigger_text", "").strip() or None
    try:
        simulation = simulator.start(
            get_redis(),
            journey.id,
            journey.draft,
            dict(sample_of(journey)),
            real_api=request.form.get("api_mode") == "real",
            allow_private=current_app.config["API_NODE_ALLOW_PRIVATE"],
            trigger_text=trigger_text,
        )
    except simulator.NotATrigger as error:
        return _simulator_response(journey, None, error=str(error))
    session[simulation_key(journey)] = simulation.token
    return _simulator_response(journey, simulation)


@bp.post("/<int:journey_id>/simulator/<action>")
def simulator_act(journey_id: int, action: str):
    journey = load_journey(journey_id)
    try:
        simulation = simulator.load(get_redis(), request.form.get("token", ""), journey.id)
    except simulator.SimulationGone as error:
        return _simulator_response(journey, None, error=str(error))
    if journeys.problems_of(journey.draft):
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
    journey = load_journey(journey_id)
    session.pop(simulation_key(journey), None)
    return _simulator_response(journey, None)


def _simulator_response(journey, simulation, error=None) -> str:
    doc = journey.draft
    body = render_template(
        "journeys/_partials/simulator.html",
        journey=journey,
        simulation=simulation,
        sim_error=error,
        buttons=simulator.expected_buttons(simulation, doc) if simulation else [],
        sample=sample_of(journey),
    )
    body += render_template(
        "journeys/_partials/diagram.html", journey=journey, oob=True, svg=svg(journey, doc, None, simulation)
    )
    return body
