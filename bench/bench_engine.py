"""Speed of the pure journey engine on one core. Prints figures; asserts nothing.

- contact-steps: one `step` call per event, driving contacts through a 10-node journey
  (audience, set, branch, message, wait, split, message, delay, api, end: 6 events per contact);
- template renders of a typical message body;
- `validate`, `parse` and `lint` of a 1,001-node journey;
- the worst case of a reply regex: the slowest allowed shape against a hostile 100,000-character reply.

    .venv/bin/python bench/bench_engine.py [--contacts 20000]
"""

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine import ContactState, events, lint, parse, step, validate
from app.engine.conditions import compile_regex
from app.engine.placeholders import render, scope

NOW = 1_700_000_000.0

TEN_NODES = {
    "format": "journey/v1",
    "name": "bench",
    "nodes": [
        {"id": "start", "type": "audience", "where": {"var": "phone", "op": "exists"}},
        {"id": "tag", "type": "set", "vars": {"greeting": "Hi <<name|there>>"}},
        {"id": "route", "type": "branch"},
        {"id": "ask", "type": "message", "body": "<<greeting>>! Did order <<order_id>> arrive? Reply YES or NO."},
        {"id": "wait", "type": "wait", "timeout": "2h"},
        {"id": "ab", "type": "split"},
        {"id": "thanks", "type": "message", "body": "Thanks <<name>>, you said <<reply>>."},
        {"id": "pause", "type": "delay", "duration": "1d"},
        {"id": "lookup", "type": "api", "url": "https://shop.example.com/orders/<<order_id>>", "save_as": "order"},
        {"id": "done", "type": "end"},
    ],
    "edges": [
        {"from": "start", "to": "tag"},
        {"from": "tag", "to": "route"},
        {"from": "route", "to": "ask", "when": {"var": "tier", "op": "ne", "value": "blocked"}},
        {"from": "route", "to": "done", "when": "fallback"},
        {"from": "ask", "to": "wait"},
        {"from": "wait", "to": "ab", "when": {"keywords": ["yes", "sim", "y"]}},
        {"from": "wait", "to": "ab", "when": {"regex": "^\\s*ok\\s*$"}},
        {"from": "wait", "to": "done", "when": "timeout"},
        {"from": "wait", "to": "ab", "when": "fallback"},
        {"from": "ab", "to": "thanks", "weight": 1},
        {"from": "ab", "to": "thanks", "weight": 3},
        {"from": "thanks", "to": "pause"},
        {"from": "pause", "to": "lookup"},
        {"from": "lookup", "to": "done"},
    ],
}


def contact_steps(contacts: int) -> None:
    journey = parse(TEN_NODES)
    rng = random.Random(1)
    script = [
        events.Start(),
        events.MessageOutcome(ok=True),
        events.Reply("Sim, chegou! Obrigada 😊"),
        events.MessageOutcome(ok=True),
        events.TimerFired("pause", 1),
        events.ApiResponse(200, {"status": "delivered", "items": [{"sku": "A"}]}),
    ]
    fields = [
        {"phone": f"+1555{index:07d}", "Name": f"Person {index}", "order_id": f"A-{index}", "tier": "gold"}
        for index in range(contacts)
    ]
    calls = nodes = 0
    started = time.process_time()
    for contact in fields:
        state = ContactState(fields=contact)
        for event in script:
            result = step(journey, state, event, now=NOW, rng=rng)
            state = result.state
            calls += 1
        nodes += sum(state.visits.values())
        assert state.status == "completed", state
    elapsed = time.process_time() - started
    print(
        f"contact-steps: {calls:,} step calls for {contacts:,} contacts through 10 nodes ({nodes:,} node entries) "
        f"in {elapsed:.2f} s CPU"
    )
    print(
        f"  {calls / elapsed:,.0f} steps/s  = {elapsed / calls * 1e6:.1f} µs per step, "
        f"{elapsed / nodes * 1e6:.1f} µs per node entered, {contacts / elapsed:,.0f} whole journeys/s"
    )


def template_renders(count: int) -> None:
    body = "Hi <<name|there>>! Order <<order.id>> (<<order.items.0.sku>>) ships <<order.eta|soon>>; <<code>> to stop."
    variables = scope(
        {"phone": "+15550001111", "Name": "Ana", "code": "STOP"},
        {"order": {"id": "A-17", "items": [{"sku": "SKU-1"}], "eta": "Monday"}},
    )
    started = time.process_time()
    for _ in range(count):
        render(body, variables)
    elapsed = time.process_time() - started
    print(
        f"template renders: {count / elapsed:,.0f} renders/s = {elapsed / count * 1e6:.1f} µs per render "
        f"(5 placeholders, nested paths, defaults)"
    )


def thousand_nodes() -> dict:
    """audience + 333 x (message, wait, set) + end: 1,001 nodes, 1,999 edges."""
    nodes = [{"id": "start", "type": "audience"}]
    edges = [{"from": "start", "to": "n0"}]
    for index in range(333):
        message, wait, tag = f"n{index}", f"w{index}", f"s{index}"
        following = f"n{index + 1}" if index < 332 else "done"
        nodes += [
            {
                "id": message,
                "type": "message",
                "body": f"Question {index} for <<name|you>>? Reply YES or NO.",
                "position": {"x": index, "y": 0},
            },
            {"id": wait, "type": "wait", "timeout": "1d"},
            {"id": tag, "type": "set", "vars": {f"answer_{index}": "<<reply>>"}},
        ]
        edges += [
            {"from": message, "to": wait},
            {"from": wait, "to": tag, "when": {"keywords": ["yes", "sim"]}},
            {"from": wait, "to": tag, "when": {"regex": "^\\s*\\d{1,3}\\s*$"}},
            {"from": wait, "to": message, "when": "fallback"},
            {"from": wait, "to": "done", "when": "timeout"},
            {"from": tag, "to": following},
        ]
    nodes.append({"id": "done", "type": "end"})
    return {"format": "journey/v1", "name": "a thousand nodes", "nodes": nodes, "edges": edges}


def validation_time(repeat: int) -> None:
    doc = thousand_nodes()
    journey = parse(doc)
    timings = {}
    for name, run in [
        ("validate", lambda: validate(doc)),
        ("parse", lambda: parse(doc)),
        ("lint", lambda: lint(journey, sample_fields=["phone", "name"])),
    ]:
        best = float("inf")
        for _ in range(repeat):
            started = time.process_time()
            result = run()
            best = min(best, time.process_time() - started)
        timings[name] = best
        if name == "validate":
            assert result == [], result[:3]
    print(
        f"large journey ({len(doc['nodes'])} nodes, {len(doc['edges'])} edges): "
        f"validate {timings['validate'] * 1e3:.1f} ms, "
        f"parse (validates too) {timings['parse'] * 1e3:.1f} ms, lint {timings['lint'] * 1e3:.1f} ms (CPU, best of {repeat})"
    )


def regex_worst_case() -> None:
    for pattern in ["^\\s*\\d{5}\\s*$", "\\d*\\d*\\d*x", "[\\w.+-]+@[\\w-]+\\.[\\w.]+"]:
        regex = compile_regex(pattern)
        hostile = "1" * 100_000 if "x" in pattern or "\\d{5}" in pattern else "a" * 100_000
        started = time.process_time()
        regex.search(hostile)
        print(
            f"regex {pattern!r}: reads {regex.input_limit} chars, hostile 100,000-char reply in CPU "
            f"{(time.process_time() - started) * 1e3:.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--renders", type=int, default=200_000)
    args = parser.parse_args()
    contact_steps(args.contacts)
    template_renders(args.renders)
    validation_time(repeat=5)
    regex_worst_case()


if __name__ == "__main__":
    main()
