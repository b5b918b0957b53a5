"""Engine behaviour not expressed as JSON cases: examples, public API shapes, properties (hypothesis)."""

import copy
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import (
    MAX_NODES_PER_STEP,
    ContactState,
    JourneyInvalid,
    Problem,
    effects,
    events,
    lint,
    parse,
    step,
    validate,
)
from app.engine.conditions import REPLY_LIMIT, compile_regex, normalize_words
from app.engine.placeholders import PLACEHOLDER_RE, Placeholder, Rendered, SmsInfo, placeholders, render, sms_info
from tests.examples import EXAMPLES_DIR

CASES_DIR = Path(__file__).parent / "cases"
NOW = 1_700_000_000.0


def _example_definitions():
    """The shared examples (copied into tests/examples)."""
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(EXAMPLES_DIR.glob("*.json"))}


@pytest.mark.parametrize(("name", "definition"), sorted(_example_definitions().items()))
def test_examples_validate_and_round_trip(name, definition):
    assert validate(definition) == []
    journey = parse(definition)
    assert journey.to_json() == definition
    assert json.dumps(journey.to_json(), sort_keys=True) == json.dumps(definition, sort_keys=True)


def test_fixed_template_api():
    assert render("Hi <<name|there>> <<x>>", {"Name": "Ana"}) == Rendered(text="Hi Ana ", missing=("x",))
    assert placeholders("Hi <<name|there>> <<x.y>>") == [
        Placeholder(path="name", default="there"),
        Placeholder(path="x.y", default=None),
    ]
    assert sms_info("Olá") == SmsInfo(encoding="UCS-2", characters=3, segments=1)


def test_parse_refuses_with_every_problem():
    with pytest.raises(JourneyInvalid) as raised:
        parse({"format": "journey/v1", "name": "", "nodes": [{"id": "m", "type": "message"}], "edges": []})
    problems = raised.value.problems
    assert all(isinstance(problem, Problem) and problem.severity == "error" for problem in problems)
    assert len(problems) == 3
    assert "name is missing" in str(raised.value)
    assert problems[1].to_json() == {
        "severity": "error",
        "message": "node 'm': needs a body (or a WhatsApp content_sid)",
        "node_id": "m",
        "edge_index": None,
        "field": "body",
    }


def _welcome_definition():
    return json.loads((CASES_DIR / "journeys.json").read_text(encoding="utf-8"))["cases"][0]["definition"]


def test_journey_is_immutable_and_export_is_a_copy():
    definition = _welcome_definition()
    original = copy.deepcopy(definition)
    journey = parse(definition)
    definition["nodes"][1]["body"] = "changed after parsing"
    assert journey.to_json() == original
    exported = journey.to_json()
    exported["nodes"].clear()
    assert journey.to_json() == original
    with pytest.raises(TypeError):
        journey.node("hello").data["body"] = "x"
    with pytest.raises(AttributeError):
        journey.name = "x"


def test_step_never_mutates_the_state_it_is_given():
    journey = parse(_welcome_definition())
    state = ContactState(fields={"phone": "+1", "name": "Ana"})
    snapshot = copy.deepcopy(state.to_json())
    first = step(journey, state, events.Start(), now=NOW)
    second = step(journey, first.state, events.MessageOutcome(ok=True), now=NOW)
    third = step(journey, second.state, events.Reply("yes"), now=NOW)
    assert state.to_json() == snapshot
    assert first.state.visits == {"start": 1, "hello": 1}
    assert second.state.variables == {}
    assert third.state.variables == {"reply": "yes", "payload": None}
    assert third.state.visits is not second.state.visits


def test_contact_state_json_round_trip_and_errors():
    state = ContactState(
        "ask", "waiting", {"order": {"items": [1, 2.5, None, True]}, "reply": "ok"}, {"ask": 2}, {"phone": "+1"}
    )
    assert ContactState.from_json(json.loads(json.dumps(state.to_json()))) == state
    assert ContactState.from_json({}) == ContactState()
    for bad, says in [
        ([], "must be an object"),
        ({"status": "asleep"}, "status 'asleep'"),
        ({"node_id": 5}, "node_id"),
        ({"variables": []}, "variables must be an object"),
        ({"visits": {"a": "1"}}, "visits"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            ContactState.from_json(bad)


def test_events_and_effects_have_a_json_form():
    for event in [
        events.Start(),
        events.Reply("hi", "P"),
        events.TimerFired("ask", 2),
        events.MessageOutcome(False, "x"),
        events.ApiResponse(200, {"a": [1]}, None, 12.5),
    ]:
        assert events.from_json(json.loads(json.dumps(events.to_json(event)))) == event
    with pytest.raises(ValueError, match="unknown event type"):
        events.from_json({"type": "Poke"})
    with pytest.raises(ValueError, match="bad Reply event"):
        events.from_json({"type": "Reply", "txt": "hi"})
    send = effects.SendMessage("m", 1, "sms", "hi", None, None, None, ("x",))
    assert effects.to_json(send)["missing"] == ["x"]
    assert effects.to_json(effects.Finish("completed", "done")) == {
        "type": "Finish",
        "status": "completed",
        "reason": "done",
    }


def test_split_follows_the_weights():
    journey = parse(
        {
            "format": "journey/v1",
            "name": "ab",
            "nodes": [
                {"id": "start", "type": "audience"},
                {"id": "s", "type": "split"},
                {"id": "a", "type": "end"},
                {"id": "b", "type": "end"},
                {"id": "c", "type": "end"},
            ],
            "edges": [
                {"from": "start", "to": "s"},
                {"from": "s", "to": "a", "weight": 1},
                {"from": "s", "to": "b", "weight": 3},
                {"from": "s", "to": "c"},
            ],
        }
    )
    rng = random.Random(42)
    counts = Counter(
        step(journey, ContactState(), events.Start(), now=NOW, rng=rng).state.node_id for _ in range(10_000)
    )
    assert 1_700 < counts["a"] < 2_300 and 5_600 < counts["b"] < 6_400 and 1_700 < counts["c"] < 2_300


def test_a_loop_without_pause_is_refused_and_the_engine_still_caps_one(monkeypatch):
    doc = {
        "format": "journey/v1",
        "name": "spin",
        "nodes": [{"id": "start", "type": "audience"}, {"id": "r", "type": "branch"}],
        "edges": [{"from": "start", "to": "r"}, {"from": "r", "to": "r", "when": "fallback"}],
    }
    with pytest.raises(JourneyInvalid) as refused:
        parse(doc)
    [problem] = refused.value.problems
    assert problem.severity == "error" and problem.node_id == "r" and "nodes r form a loop" in problem.message
    monkeypatch.setattr("app.engine.definitions.validate", lambda doc: [])  # a definition stored before the rule
    journey = parse(doc)
    result = step(journey, ContactState(), events.Start(), now=NOW)
    entries = [entry for entry in result.trail if entry["kind"] == "enter"]
    assert len(entries) == MAX_NODES_PER_STEP
    assert result.state.status == "failed" and result.trail[-2]["kind"] == "error"
    assert result.effects == (effects.Finish("failed", result.trail[-2]["message"]),)


def test_hostile_patterns_are_refused_or_bounded():
    for pattern in ["(a+)+$", "(a|a)*$", "(a*)*b", "(\\w+\\s?)+$", "(.*a){12}", "(a)\\1", "(?:x+x+)+y"]:
        with pytest.raises(ValueError):
            compile_regex(pattern)
    assert compile_regex("^\\s*\\d{5}\\s*$").input_limit == REPLY_LIMIT
    slow = compile_regex("\\d*\\d*\\d*x")
    assert 16 <= slow.input_limit < 100
    assert not slow.search("1" * 100_000)


def test_keyword_normalisation():
    assert normalize_words("  SÍM!!  Não... ") == "sim nao"
    assert normalize_words("Ok👍🏽") == "ok 👍 🏽"
    assert normalize_words("ÇA VA?") == "ca va"


# --- properties ---------------------------------------------------------

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
template_text = st.lists(
    st.sampled_from(list("ab .|<>{}") + ["<<", ">>", "<<a>>", "<<b|d>>", "<< a.0 >>", "é", "😀"]), max_size=20
).map("".join)


@given(text=template_text, variables=st.dictionaries(st.sampled_from(["a", "A", "b", "c"]), json_values, max_size=4))
def test_render_never_raises_and_reports_only_its_placeholders(text, variables):
    rendered = render(text, variables)
    assert isinstance(rendered.text, str)
    paths = {placeholder.path for placeholder in placeholders(text)}
    assert set(rendered.missing) <= paths
    assert len(set(rendered.missing)) == len(rendered.missing)


@given(
    text=st.text(max_size=60).filter(lambda text: "<<" not in text),
    variables=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
)
def test_render_leaves_text_without_placeholders_untouched(text, variables):
    assert render(text, variables) == Rendered(text, ())


@given(
    parts=st.lists(st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=12), min_size=1, max_size=5),
    value=st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=8),
)
def test_text_between_placeholders_is_kept_exactly(parts, value):
    text = "<<v>>".join(parts)
    assert render(text, {"v": value}).text == value.join(parts)
    assert PLACEHOLDER_RE.sub("", text) == "".join(parts)


@given(text=st.text(max_size=400))
def test_sms_info_is_consistent(text):
    info = sms_info(text)
    assert info.encoding in ("GSM-7", "UCS-2")
    assert (info.segments == 0) == (text == "")
    single, multi = (160, 153) if info.encoding == "GSM-7" else (70, 67)
    assert info.characters >= len(text)
    if info.characters > single:
        assert info.segments >= -(-info.characters // multi)


node_types = st.sampled_from(
    ["audience", "message", "api", "delay", "wait", "split", "branch", "set", "end", "bogus", None, 3]
)
ids = st.sampled_from(["start", "a", "b", "c", "bad id", "", None, 7])
whens = st.one_of(
    st.none(),
    st.sampled_from(["always", "fallback", "timeout", "success", "failure", "sometimes"]),
    st.fixed_dictionaries({"keywords": st.lists(st.text(max_size=6), max_size=3)}),
    st.fixed_dictionaries({"regex": st.sampled_from(["^\\d+$", "(", "(a+)+", "yes", ""])}),
    st.fixed_dictionaries({"payload": st.text(max_size=4)}),
    st.fixed_dictionaries(
        {
            "var": st.sampled_from(["x", "x.y", ""]),
            "op": st.sampled_from(["eq", "gt", "exists", "like"]),
            "value": json_leaf,
        }
    ),
    json_values,
)
nodes = st.fixed_dictionaries(
    {"id": ids, "type": node_types},
    optional={
        "body": st.sampled_from(["Hi <<name>>", "<<", "", 5]),
        "duration": st.sampled_from(["1h", 0, "-1s", "x", 30]),
        "timeout": st.sampled_from(["2h", 0, 31, 5]),
        "url": st.sampled_from(["https://x/<<id>>", 5]),
        "vars": st.dictionaries(st.sampled_from(["a", "reply", "b c"]), st.sampled_from(["x", "<<y>>", 1]), max_size=2),
        "where": whens,
        "label": json_leaf,
        "position": json_values,
        "extra": json_values,
    },
)
edges = st.fixed_dictionaries(
    {"from": ids, "to": ids}, optional={"when": whens, "weight": json_leaf, "label": json_leaf}
)
random_documents = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "format": st.sampled_from(["journey/v1", "v2"]),
            "name": st.one_of(st.text(max_size=3), st.none()),
            "nodes": st.lists(nodes, max_size=6),
            "edges": st.lists(edges, max_size=8),
        },
        optional={"channel": json_leaf, "description": json_leaf, "other": json_values},
    ),
)


MUTATED_KEYS = [
    "id",
    "type",
    "body",
    "when",
    "from",
    "to",
    "timeout",
    "duration",
    "weight",
    "label",
    "url",
    "vars",
    "where",
    "save_as",
    "content_variables",
    "extra",
]


@st.composite
def mutated_examples(draw):
    """An example with a few random edits: near-valid documents reach the deeper checks (and some stay valid)."""
    doc = copy.deepcopy(draw(st.sampled_from([d for _, d in sorted(_example_definitions().items())])))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["drop", "set", "delete"]))
        items = doc[draw(st.sampled_from(["nodes", "edges"]))]
        if not items:
            continue
        index = draw(st.integers(0, len(items) - 1))
        if kind == "drop":
            del items[index]
        elif kind == "set":
            items[index][draw(st.sampled_from(MUTATED_KEYS))] = draw(whens | json_values)
        elif items[index]:
            del items[index][draw(st.sampled_from(sorted(items[index])))]
    return doc


documents = st.one_of(random_documents, mutated_examples())


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents)
def test_validation_never_crashes(doc):
    problems = validate(doc)
    assert all(isinstance(problem, Problem) and problem.severity == "error" and problem.message for problem in problems)
    if problems:
        with pytest.raises(JourneyInvalid):
            parse(doc)
    else:
        journey = parse(doc)
        assert journey.to_json() == doc
        assert all(warning.severity == "warning" for warning in lint(journey, sample_fields=["phone"]))
        result = step(journey, ContactState(), events.Start(), now=NOW, rng=random.Random(0))
        json.dumps([effects.to_json(effect) for effect in result.effects])


event_strategy = st.one_of(
    st.just(events.Start()),
    st.builds(
        events.Reply,
        st.one_of(st.sampled_from(["yes", "SÍM!", "não", "12345", " 94107 ", "", "👍"]), st.text(max_size=30)),
        st.one_of(st.none(), st.sampled_from(["SURVEY_YES", "SURVEY_NO", "x"])),
    ),
    st.builds(
        events.TimerFired, st.sampled_from(["ask", "choice", "zip", "pause", "hello", "nope"]), st.integers(0, 3)
    ),
    st.builds(events.MessageOutcome, st.booleans(), st.one_of(st.none(), st.text(max_size=10))),
    st.builds(
        events.ApiResponse,
        st.one_of(st.none(), st.integers(100, 599)),
        json_values,
        st.one_of(st.none(), st.just("boom")),
    ),
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(_example_definitions())),
    script=st.lists(event_strategy, max_size=12),
    seed=st.integers(0, 1000),
)
def test_any_event_sequence_keeps_a_consistent_state(name, script, seed):
    journey = parse(_example_definitions()[name])
    state = ContactState(fields={"phone": "+1", "name": "Ana", "order_id": "7"})
    rng = random.Random(seed)
    for event in [events.Start(), *script]:
        result = step(journey, state, event, now=NOW, rng=rng)
        assert ContactState.from_json(json.loads(json.dumps(result.state.to_json()))) == result.state
        json.dumps(list(result.trail))
        json.dumps([effects.to_json(effect) for effect in result.effects], default=str)
        if state.is_final:
            assert result.state == state and not result.effects
        finishes = [effect for effect in result.effects if isinstance(effect, effects.Finish)]
        assert len(finishes) == (1 if result.state.is_final and not state.is_final else 0)
        if not result.state.is_final and result.state.node_id is not None:
            node_type = journey.node(result.state.node_id).type
            assert {"sending": "message", "delayed": "delay", "waiting": "wait", "active": "api"}[
                result.state.status
            ] == node_type
        state = result.state
