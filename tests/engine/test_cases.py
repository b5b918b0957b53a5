"""Runs the table-driven JSON cases under `cases/`, one pytest item per case (`<file>::<case name>`).

Case files for node types and conditions (`<registry key>.json`) describe
journeys and event sequences:

    {"about": "...", "definition": {...},            # optional, shared by the cases
     "cases": [{"name": "...",
                "definition": {...} | "nodes": [...], "edges": [...],   # fragment: format/name are added
                "fields": {...}, "state": {...}, "seed": 1, "now": 1700000000,
                "steps": [{"event": "Start" | {"type": "Reply", "text": "yes", "repeat": ["x", 2000]}, "now": ...,
                           "expect": {"node": ..., "status": ..., "variables": {...}, "variables_include": {...},
                                      "visits": {...}, "effects": [...], "trail": [...], "trail_kinds": [...],
                                      "ignored": "reason"}}]}]}

Expected effects and trail entries are lists of the same length as the
actual ones; each expected dict must be contained in the actual entry (keys it
leaves out are not checked). `validation.json`, `lint.json`, `templates.json`
and `sms.json` have their own small shapes, read by the functions below.
"""

import json
import random
from pathlib import Path

import pytest

from app.engine import ContactState, effects, events, lint, parse, step, validate
from app.engine.conditions import CONDITIONS
from app.engine.nodes import NODE_TYPES
from app.engine.placeholders import placeholders, render, sms_info, template_problems

CASES_DIR = Path(__file__).parent / "cases"
DEFAULT_NOW = 1_700_000_000
DEFAULT_FIELDS = {"phone": "+15550001111", "name": "Ana"}
SPECIAL_FILES = {"validation", "lint", "templates", "sms"}


def _load(stem):
    return json.loads((CASES_DIR / f"{stem}.json").read_text(encoding="utf-8"))


def _cases(stems):
    return [
        pytest.param(stem, case, id=f"{stem}.json::{case['name']}") for stem in stems for case in _load(stem)["cases"]
    ]


def _definition(case, shared=None):
    if "definition" in case:
        return case["definition"]
    if "nodes" in case:
        return {
            "format": "journey/v1",
            "name": case["name"][:200],
            "nodes": case["nodes"],
            "edges": case.get("edges", []),
        }
    return shared


def _contains(actual, expected, where):
    assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
    for key, value in expected.items():
        assert key in actual, f"{where}: no key {key!r} in {actual!r}"
        assert actual[key] == value, f"{where}: {key} is {actual[key]!r}, expected {value!r}\n{actual!r}"


def _check_list(actual, expected, where):
    assert len(actual) == len(expected), f"{where}: got {len(actual)} entries, expected {len(expected)}:\n{actual!r}"
    for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
        _contains(got, want, f"{where}[{index}]")


def _event(data):
    """An event from its JSON; a Reply's text may be `before` + piece * times (`repeat`) + `text`."""
    if data == "Start":
        return events.Start()
    data = dict(data)
    if "repeat" in data:
        piece, times = data.pop("repeat")
        data["text"] = data.pop("before", "") + piece * times + data.get("text", "")
    return events.from_json(data)


def _roundtrip(value):
    return json.loads(json.dumps(value))


STEP_STEMS = sorted(set(NODE_TYPES) | set(CONDITIONS) | {p.stem for p in CASES_DIR.glob("*.json")} - SPECIAL_FILES)


@pytest.mark.parametrize("stem", sorted(set(NODE_TYPES) | set(CONDITIONS)))
def test_every_registry_entry_has_a_case_file(stem):
    path = CASES_DIR / f"{stem}.json"
    assert path.exists(), f"{stem!r} is in a registry but has no {path.name}"
    assert _load(stem)["cases"], f"{path.name} has no cases"


@pytest.mark.parametrize(("stem", "case"), _cases([s for s in STEP_STEMS if (CASES_DIR / f"{s}.json").exists()]))
def test_step_case(stem, case):
    shared = _load(stem).get("definition")
    journey = parse(_definition(case, shared))
    assert journey.to_json() == _definition(case, shared)
    fields = case.get("fields", DEFAULT_FIELDS)
    state = ContactState.from_json(case["state"]) if "state" in case else ContactState(fields=fields)
    if "state" in case and "fields" not in case["state"]:
        state = ContactState.from_json({**case["state"], "fields": fields})
    rng = random.Random(case.get("seed", 1))
    for number, item in enumerate(case["steps"]):
        where = f"step {number}"
        before = state
        result = step(journey, state, _event(item["event"]), now=item.get("now", case.get("now", DEFAULT_NOW)), rng=rng)
        expect = item.get("expect", {})
        actual_effects = [effects.to_json(effect) for effect in result.effects]
        assert _roundtrip(actual_effects) == actual_effects, f"{where}: effects are not plain JSON"
        assert _roundtrip(result.trail) == list(result.trail), f"{where}: trail is not plain JSON"
        assert ContactState.from_json(_roundtrip(result.state.to_json())) == result.state
        assert result.state.variables is not before.variables or result.state is before
        if "ignored" in expect:
            assert result.state == before and not result.effects, f"{where}: an ignored event changed something"
            assert list(result.trail) == [{"kind": "ignored", "reason": expect["ignored"]}], f"{where}: {result.trail}"
        if "node" in expect:
            assert result.state.node_id == expect["node"], f"{where}: at {result.state.node_id!r}\n{result.trail[-6:]}"
        if "status" in expect:
            assert result.state.status == expect["status"], (
                f"{where}: status {result.state.status!r}\n{result.trail[-6:]}"
            )
        if "variables" in expect:
            assert result.state.variables == expect["variables"], where
        if "variables_include" in expect:
            _contains(result.state.variables, expect["variables_include"], f"{where}: variables")
        if "visits" in expect:
            assert result.state.visits == expect["visits"], where
        if "effects" in expect:
            _check_list(actual_effects, expect["effects"], f"{where}: effects")
        if "trail" in expect:
            _check_list(list(result.trail), expect["trail"], f"{where}: trail")
        if "trail_kinds" in expect:
            assert [entry["kind"] for entry in result.trail] == expect["trail_kinds"], f"{where}: {result.trail}"
        state = result.state


def _match_problems(actual, expected, where):
    """Every expected problem matches a different actual one, and there are no others."""
    remaining = list(actual)
    for want in expected:
        says = want.get("says", "")
        fields = {key: value for key, value in want.items() if key != "says"}
        match = next(
            (
                p
                for p in remaining
                if says.lower() in p.message.lower() and all(getattr(p, key) == value for key, value in fields.items())
            ),
            None,
        )
        assert match is not None, f"{where}: no problem like {want!r} among:\n" + "\n".join(map(repr, actual))
        remaining.remove(match)
    assert not remaining, f"{where}: unexpected problems:\n" + "\n".join(map(repr, remaining))


@pytest.mark.parametrize(("stem", "case"), _cases(["validation"]))
def test_validation_case(stem, case):
    problems = validate(_definition(case))
    assert all(problem.severity == "error" for problem in problems)
    _match_problems(problems, case["errors"], "validation")


@pytest.mark.parametrize(("stem", "case"), _cases(["lint"]))
def test_lint_case(stem, case):
    warnings = lint(parse(_definition(case)), sample_fields=case.get("sample_fields"))
    assert all(problem.severity == "warning" for problem in warnings)
    _match_problems(warnings, case["warnings"], "lint")


@pytest.mark.parametrize(("stem", "case"), _cases(["templates"]))
def test_template_case(stem, case):
    text = case["text"]
    if "expect" in case:
        rendered = render(text, case.get("vars", {}))
        assert rendered.text == case["expect"]
        assert list(rendered.missing) == case.get("missing", [])
    if "placeholders" in case:
        assert [list(p) for p in placeholders(text)] == case["placeholders"]
    if "problems" in case:
        problems = template_problems(text)
        assert len(problems) == len(case["problems"]), problems
        for got, says in zip(problems, case["problems"], strict=True):
            assert says.lower() in got.lower(), problems


@pytest.mark.parametrize(("stem", "case"), _cases(["sms"]))
def test_sms_case(stem, case):
    text = case["text"] * case.get("times", 1) + case.get("then", "")
    info = sms_info(text)
    assert (info.encoding, info.characters, info.segments) == (case["encoding"], case["characters"], case["segments"])
