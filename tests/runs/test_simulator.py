"""The simulator walks a pretend contact through a journey with the real engine, state in Redis."""

import json

import pytest

from app.queues import get_redis
from app.runs import simulator
from tests.examples import EXAMPLES_DIR


def example(name: str) -> dict:
    return json.loads((EXAMPLES_DIR / f"{name}.json").read_text())


def said(simulation) -> list[str]:
    return [item["text"] for item in simulation.chat if item["who"] == "journey"]


def run(doc, fields=None, real_api=False):
    simulation = simulator.start(
        get_redis(), 1, doc, fields or {"name": "Ana", "order_id": "7"}, real_api=real_api, allow_private=True
    )
    return simulation


@pytest.mark.parametrize(
    "reply, last, path_end",
    [
        ("Yes please", "Great, thanks Ana!", ["thanks", "done"]),
        ("NÃO", "Sorry about that! Someone will call you today.", ["sorry", "done"]),
    ],
)
def test_yes_and_no_paths(app, reply, last, path_end):
    doc = example("welcome")
    simulation = run(doc)
    assert said(simulation) == ["Hi Ana! Did order 7 arrive? Reply YES or NO."]
    assert simulation.contact.status == "waiting" and simulation.timer["node_id"] == "ask"
    simulator.reply(simulation, doc, reply, None)
    assert said(simulation)[-1] == last
    assert simulation.path[-2:] == path_end and simulation.finished
    assert simulation.timer is None


def test_unclear_reply_loops_then_timeout(app):
    doc = example("welcome")
    simulation = run(doc)
    simulator.reply(simulation, doc, "what?", None)
    assert said(simulation)[-1] == "Please answer YES or NO."
    assert simulation.path == ["start", "hello", "ask", "again", "ask"] and simulation.edges[-1] == 6
    simulator.fire_timer(simulation, doc)
    assert said(simulation)[-1].startswith("Sorry about that!")
    assert simulation.contact.status == "completed"
    simulator.fire_timer(simulation, doc)
    assert simulation.chat[-1]["text"] == "No timer is pending."


def test_state_is_kept_in_redis_with_a_ttl(app):
    doc = example("welcome")
    simulation = run(doc)
    key = simulator.KEY_PREFIX + simulation.token
    assert 0 < get_redis().ttl(key) <= simulator.TTL_SECONDS
    loaded = simulator.load(get_redis(), simulation.token, 1)
    assert loaded.path == simulation.path and loaded.state == simulation.state
    with pytest.raises(simulator.SimulationGone):
        simulator.load(get_redis(), simulation.token, 2)
    with pytest.raises(simulator.SimulationGone):
        simulator.load(get_redis(), "missing", 1)


def test_whatsapp_buttons_and_template(app):
    doc = example("whatsapp-survey")
    for _ in range(20):  # the A/B split is random: wait for the template branch
        simulation = run(doc)
        if simulation.chat[0].get("content_sid"):
            break
    assert simulation.chat[0]["content_variables"] == {"1": "Ana"}
    assert simulator.expected_buttons(simulation, doc) == ["SURVEY_YES", "SURVEY_NO"]
    simulator.reply(simulation, doc, "Yes", "SURVEY_YES")
    assert said(simulation)[-1] == "Thanks! What's your 5-digit ZIP code?"
    simulator.reply(simulation, doc, "1234", None)
    assert said(simulation)[-1].startswith("That doesn't look like a ZIP code")
    simulator.reply(simulation, doc, " 94110 ", None)
    assert said(simulation)[-1] == "Thanks, Ana! Noted ZIP  94110 ."


def test_api_call_typed_or_real(app, fake_api):
    doc = example("order-status")
    typed = run(doc)
    assert typed.pending_api["url"] == "http://127.0.0.1:8099/orders/7"
    simulator.answer_api(typed, doc, 500, {"error": "down"})
    assert said(typed)[-1] == "Sorry, we couldn't look up order 7 right now."

    doc["nodes"][1]["url"] = fake_api.url("/orders/<<order_id>>")
    fake_api.orders["7"] = {"status": "packing"}
    real = run(doc, real_api=True)
    assert real.pending_api is None
    assert [item for item in real.chat if item["who"] == "api"][0]["body"] == {"status": "packing"}
    assert said(real)[-1] == "Ana, order 7 is packing. We'll text you when it ships."
    assert real.contact.status == "delayed" and real.timer["node_id"] == "pause"
    simulator.fire_timer(real, doc)
    assert real.finished and real.path[-2:] == ["tag", "done"]
    assert fake_api.requests[0].path == "/orders/7"


def test_a_stored_loop_without_pause_still_answers(app, monkeypatch):
    doc = {
        "format": "journey/v1",
        "name": "spin",
        "nodes": [
            {"id": "start", "type": "audience"},
            {"id": "m1", "type": "message", "body": "1"},
            {"id": "m2", "type": "message", "body": "2"},
        ],
        "edges": [{"from": "start", "to": "m1"}, {"from": "m1", "to": "m2"}, {"from": "m2", "to": "m1"}],
    }
    monkeypatch.setattr("app.engine.definitions.validate", lambda doc: [])  # stored before loops were refused
    simulation = run(doc)
    assert simulation.contact.status == "failed"
    assert len(said(simulation)) == simulator.MAX_MESSAGES
    assert "MAX_MESSAGES_PER_CONTACT" in simulation.chat[-1]["text"]


def test_a_loop_through_a_delay_stops_at_the_simulator_cap(app):
    doc = {
        "format": "journey/v1",
        "name": "ping",
        "nodes": [
            {"id": "start", "type": "audience"},
            {"id": "ping", "type": "message", "body": "ping"},
            {"id": "pause", "type": "delay", "duration": "1h"},
        ],
        "edges": [{"from": "start", "to": "ping"}, {"from": "ping", "to": "pause"}, {"from": "pause", "to": "ping"}],
    }
    simulation = run(doc)
    for _ in range(simulator.MAX_MESSAGES + 5):
        simulator.fire_timer(simulation, doc)
    assert said(simulation) == ["ping"] * simulator.MAX_MESSAGES
    assert simulation.contact.status == "failed" and simulation.timer is None
