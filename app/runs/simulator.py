"""The designer's simulator: one pretend contact walked through a journey by the real engine.

Operators try a journey before any message leaves: the simulator calls
`engine.step` exactly as the workers do and carries out its effects in its
own way: a `SendMessage` becomes a chat bubble and is accepted at once (no
Twilio), a `ScheduleWake` becomes a timer the operator can fire now, a
`CallApi` is made for real through `app.runs.http_calls` (the same safety rules
as the workers) or answered with a response the operator types.

A simulation is small JSON kept in Redis under a random key with a TTL, so
the web process keeps no state and an abandoned one expires by itself.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from redis import Redis

from app import engine
from app.engine import effects, events
from app.engine.triggers import keywords_by_channel, matching_keyword
from app.runs import message_cap
from app.runs.http_calls import ApiCall, perform_calls

TTL_SECONDS = 2 * 3600
KEY_PREFIX = "simulator:"
MAX_CHAT = 200
# Its own caps, so that it always answers: messages to the pretend contact (as MAX_MESSAGES_PER_CONTACT does
# for a run) and engine steps per action (a journey stored before loops were refused cannot spin it).
MAX_MESSAGES = 50
MAX_STEPS_PER_ACTION = 200


class SimulationGone(LookupError):
    """The simulation expired or never existed: start a new one."""


@dataclass
class Simulation:
    """A pretend contact's state, the conversation so far and what it waits for."""

    token: str
    journey_id: int
    real_api: bool
    state: dict
    chat: list[dict] = field(default_factory=list)  # {"who": "journey"|"contact"|"system"|"api", "text", ...}
    path: list[str] = field(default_factory=list)
    edges: list[int] = field(default_factory=list)
    timer: dict | None = None  # {"node_id", "visit", "at"}
    pending_api: dict | None = None  # a CallApi awaiting a typed response

    @property
    def contact(self) -> engine.ContactState:
        return engine.ContactState.from_json(self.state)

    @property
    def finished(self) -> bool:
        return self.contact.is_final

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)


class NotATrigger(ValueError):
    """The text given to start a simulation matches none of the journey's trigger keywords."""


def start(
    redis: Redis,
    journey_id: int,
    doc: dict,
    fields: dict,
    *,
    real_api: bool,
    allow_private: bool = False,
    trigger_text: str | None = None,
) -> Simulation:
    """A new simulation of `doc` for a contact with `fields`, already stepped from the audience node.

    With `trigger_text` the contact starts the way a keyword trigger starts it: the text must match
    a trigger keyword (`NotATrigger` says which keywords would), and it is the variable `trigger`.
    """
    variables, opening = {}, []
    if trigger_text is not None:
        keyword = _trigger_keyword(doc, trigger_text)
        variables = {"trigger": trigger_text}
        opening = [
            {"who": "contact", "text": trigger_text, "payload": None},
            {"who": "system", "text": f"Started by the keyword trigger {keyword!r}."},
        ]
    simulation = Simulation(
        token=secrets.token_urlsafe(16),
        journey_id=journey_id,
        real_api=real_api,
        state=engine.ContactState(fields=dict(fields), variables=variables).to_json(),
        chat=opening,
    )
    _advance(simulation, engine.parse(doc), events.Start(), allow_private)
    save(redis, simulation)
    return simulation


def _trigger_keyword(doc: dict, text: str) -> str:
    keywords = keywords_by_channel(doc)
    for channel_keywords in keywords.values():
        keyword = matching_keyword(text, channel_keywords)
        if keyword is not None:
            return keyword
    listed = "; ".join(f"{', '.join(words)} ({channel})" for channel, words in keywords.items())
    raise NotATrigger(
        f"{text!r} starts no conversation: this journey's triggers are {listed}"
        if listed
        else "this journey has no keyword triggers: add them in the journey settings"
    )


def load(redis: Redis, token: str, journey_id: int) -> Simulation:
    raw = redis.get(KEY_PREFIX + token) if token else None
    if raw is None:
        raise SimulationGone("this simulation has expired: start a new one")
    simulation = Simulation(**json.loads(raw))
    if simulation.journey_id != journey_id:
        raise SimulationGone("this simulation belongs to another journey")
    return simulation


def save(redis: Redis, simulation: Simulation) -> None:
    redis.set(KEY_PREFIX + simulation.token, simulation.to_json(), ex=TTL_SECONDS)


def reply(simulation: Simulation, doc: dict, text: str, payload: str | None, allow_private: bool = False) -> None:
    """The contact sends `text` (or taps a button with `payload`)."""
    simulation.chat.append({"who": "contact", "text": text, "payload": payload})
    _advance(simulation, engine.parse(doc), events.Reply(text=text, payload=payload or None), allow_private)


def fire_timer(simulation: Simulation, doc: dict, allow_private: bool = False) -> None:
    """Fire the pending delay or wait timeout now instead of at its time."""
    timer = simulation.timer
    if timer is None:
        _note(simulation, "No timer is pending.")
        return
    simulation.timer = None
    _note(simulation, f"Timer of node {timer['node_id']} fired.")
    _advance(simulation, engine.parse(doc), events.TimerFired(timer["node_id"], timer["visit"]), allow_private)


def answer_api(simulation: Simulation, doc: dict, status: int | None, body, allow_private: bool = False) -> None:
    """Answer the pending API call with a typed status and body (None status = no answer)."""
    if simulation.pending_api is None:
        _note(simulation, "No API call is waiting for an answer.")
        return
    call = simulation.pending_api
    simulation.pending_api = None
    simulation.chat.append(
        {"who": "api", "text": f"{call['method']} {call['url']} → {status or 'no answer'} (typed)", "body": body}
    )
    response = events.ApiResponse(status=status, body=body, error=None if status else "no answer (simulated)")
    _advance(simulation, engine.parse(doc), response, allow_private)


def expected_buttons(simulation: Simulation, doc: dict) -> list[str]:
    """Button payloads the wait node the contact stands at reacts to."""
    state = simulation.contact
    if state.status != "waiting":
        return []
    return [
        edge["when"]["payload"]
        for edge in doc.get("edges", [])
        if edge.get("from") == state.node_id and isinstance(edge.get("when"), dict) and "payload" in edge["when"]
    ]


def _note(simulation: Simulation, text: str) -> None:
    simulation.chat.append({"who": "system", "text": text})


def _advance(simulation: Simulation, journey: engine.Definition, event, allow_private: bool) -> None:
    """Step with `event`, then carry out the effects, stepping again on each outcome, until the engine waits."""
    pending, steps = [event], 0
    while pending:
        steps += 1
        if steps > MAX_STEPS_PER_ACTION:
            _stop_runaway(simulation, f"stopped after {MAX_STEPS_PER_ACTION} steps in one go: the journey loops")
            break
        before = simulation.contact
        result = message_cap.capped(
            journey, before, engine.step(journey, before, pending.pop(0), time.time()), MAX_MESSAGES
        )
        simulation.state = result.state.to_json()
        _record_trail(simulation, result.trail)
        for effect in result.effects:
            outcome = _carry_out(simulation, effect, allow_private)
            if outcome is not None:
                pending.append(outcome)
    del simulation.chat[:-MAX_CHAT]


def _stop_runaway(simulation: Simulation, reason: str) -> None:
    """End the pretend contact as `failed`, as a run would, and say why."""
    state = simulation.contact
    simulation.state = engine.ContactState(
        state.node_id, "failed", state.variables, state.visits, state.fields
    ).to_json()
    simulation.timer = simulation.pending_api = None
    _note(simulation, f"Error: {reason}")


def _record_trail(simulation: Simulation, trail) -> None:
    for entry in trail:
        kind = entry.get("kind")
        if kind == "enter":
            simulation.path.append(entry["node"])
        elif kind == "edge":
            simulation.edges.append(entry["index"])
        elif kind == "ignored":
            _note(simulation, f"Ignored: {entry.get('reason')}.")
        elif kind == "error":
            _note(simulation, f"Error: {entry.get('message')}")


def _call(call: ApiCall, allow_private: bool):
    """Make one real call; in a helper thread when this one already runs an event loop (asyncio.run would refuse)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return perform_calls([call], allow_private=allow_private)[0]
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(perform_calls, [call], allow_private).result()[0]


def _carry_out(simulation: Simulation, effect, allow_private: bool):
    """Do one effect the simulator's way; return the event it leads to at once, if any."""
    if isinstance(effect, effects.SendMessage):
        simulation.chat.append(
            {
                "who": "journey",
                "node_id": effect.node_id,
                "channel": effect.channel,
                "text": effect.body or "",
                "content_sid": effect.content_sid,
                "content_variables": effect.content_variables,
                "media_url": effect.media_url,
                "missing": list(effect.missing),
            }
        )
        return events.MessageOutcome(ok=True)
    if isinstance(effect, effects.ScheduleWake):
        simulation.timer = (
            None
            if effect.at is None
            else {
                "node_id": effect.node_id,
                "visit": effect.visit,
                "at": effect.at,
            }
        )
        return None
    if isinstance(effect, effects.CallApi):
        call = {
            "node_id": effect.node_id,
            "method": effect.method,
            "url": effect.url,
            "headers": effect.headers,
            "body": effect.body,
            "timeout": effect.timeout,
        }
        if not simulation.real_api:
            simulation.pending_api = call
            return None
        result = _call(
            ApiCall(None, effect.method, effect.url, effect.headers, effect.body, effect.timeout), allow_private
        )
        simulation.chat.append(
            {
                "who": "api",
                "text": f"{effect.method} {effect.url} → {result.status or result.error}",
                "body": result.body,
                "duration_ms": round(result.duration_ms),
            }
        )
        return events.ApiResponse(
            status=result.status, body=result.body, error=result.error, duration_ms=result.duration_ms
        )
    if isinstance(effect, effects.Finish):
        _note(simulation, f"The contact finished: {effect.status} ({effect.reason}).")
    return None
