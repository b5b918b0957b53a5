"""Server time of every designer endpoint on a generated 50-node journey. Prints p50/p95 ms; asserts nothing.

The Flask test client calls the real app (SQLite by default, or `DATABASE_URL`; Redis of
`BENCH_REDIS_URL`, default DB 15) so the figures are the server's own time per editor interaction:
render, validate + lint, layout, save.

    .venv/bin/python -m bench.bench_designer [--nodes 50] [--repeat 40]

`generated_journey(size)` builds the journey: sections repeat until the size is reached: a question
with a reply wait (keywords, regex, fallback loop, timeout), an API lookup with a branch, and a
random split with a delay and a `set`; every section flows into the next.
"""

import argparse
import os
import re
import statistics
import tempfile
import time


def generated_journey(size: int = 50) -> dict:
    """A valid `journey/v1` document with `size` nodes (at least 8)."""
    nodes = [{"id": "start", "type": "audience"}]
    edges = []
    previous = "start"
    section = 0
    while len(nodes) < size - 6:
        entry, leave = _section(section, nodes, edges)
        edges.append({"from": previous, "to": entry})
        previous, section = leave, section + 1
    while len(nodes) < size - 1:
        filler = f"note{len(nodes)}"
        nodes.append({"id": filler, "type": "message", "body": f"Step {len(nodes)} for <<name|you>>."})
        edges.append({"from": previous, "to": filler})
        previous = filler
    nodes.append({"id": "done", "type": "end"})
    edges.append({"from": previous, "to": "done"})
    return {
        "format": "journey/v1",
        "name": f"Generated {size}-node journey",
        "channel": "sms",
        "nodes": nodes,
        "edges": edges,
    }


def _section(number: int, nodes: list, edges: list) -> tuple[str, str]:
    kind = number % 3
    n = number
    if kind == 0:
        nodes += [
            {"id": f"ask{n}", "type": "message", "body": f"Question {n}, <<name|friend>>: reply YES, NO or a code."},
            {"id": f"wait{n}", "type": "wait", "timeout": "2h"},
            {"id": f"yes{n}", "type": "message", "body": "Thanks!"},
            {"id": f"code{n}", "type": "message", "body": "Code <<reply>> noted."},
            {"id": f"again{n}", "type": "message", "body": "Please answer YES or NO."},
        ]
        edges += [
            {"from": f"ask{n}", "to": f"wait{n}"},
            {"from": f"wait{n}", "to": f"yes{n}", "when": {"keywords": ["yes", "y", "sim"]}},
            {"from": f"wait{n}", "to": f"code{n}", "when": {"regex": "^\\d{4}$"}},
            {"from": f"wait{n}", "to": f"again{n}", "when": "fallback"},
            {"from": f"wait{n}", "to": f"yes{n}", "when": "timeout"},
            {"from": f"again{n}", "to": f"wait{n}"},
            {"from": f"code{n}", "to": f"yes{n}"},
        ]
        return f"ask{n}", f"yes{n}"
    if kind == 1:
        nodes += [
            {"id": f"lookup{n}", "type": "api", "url": "http://127.0.0.1:9/orders/<<order_id>>", "save_as": "order"},
            {"id": f"route{n}", "type": "branch"},
            {"id": f"shipped{n}", "type": "message", "body": "Order <<order_id>> shipped."},
            {"id": f"later{n}", "type": "message", "body": "Order <<order_id>> is <<order.status>>."},
            {"id": f"oops{n}", "type": "message", "body": "We could not look it up."},
            {"id": f"join{n}", "type": "set", "vars": {f"section{n}": "done"}},
        ]
        edges += [
            {"from": f"lookup{n}", "to": f"route{n}", "when": "success"},
            {"from": f"lookup{n}", "to": f"oops{n}", "when": "failure"},
            {"from": f"route{n}", "to": f"shipped{n}", "when": {"var": "order.status", "op": "eq", "value": "shipped"}},
            {"from": f"route{n}", "to": f"later{n}", "when": "fallback"},
            {"from": f"shipped{n}", "to": f"join{n}"},
            {"from": f"later{n}", "to": f"join{n}"},
            {"from": f"oops{n}", "to": f"join{n}"},
        ]
        return f"lookup{n}", f"join{n}"
    nodes += [
        {"id": f"ab{n}", "type": "split"},
        {"id": f"offer_a{n}", "type": "message", "body": "Offer A: 10% off."},
        {"id": f"offer_b{n}", "type": "message", "body": "Offer B: free shipping."},
        {"id": f"pause{n}", "type": "delay", "duration": "1d"},
    ]
    edges += [
        {"from": f"ab{n}", "to": f"offer_a{n}", "weight": 3},
        {"from": f"ab{n}", "to": f"offer_b{n}", "weight": 1},
        {"from": f"offer_a{n}", "to": f"pause{n}"},
        {"from": f"offer_b{n}", "to": f"pause{n}"},
    ]
    return f"ab{n}", f"pause{n}"


def _timed(samples: dict, name: str, call) -> object:
    started = time.perf_counter()
    response = call()
    samples.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    if response.status_code >= 400:
        raise SystemExit(f"{name}: HTTP {response.status_code}\n{response.text[:500]}")
    return response


def _revision(client, journey_id: int) -> int:
    from app.extensions import db
    from app.models import Journey

    db.session.expire_all()
    return db.session.get(Journey, journey_id).draft_revision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()

    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from app.journeys import store as journeys
    from app.models import User

    workdir = tempfile.mkdtemp(prefix="bench-designer-")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/bench.sqlite3",
            "REDIS_URL": redis_url,
            "RQ_DASHBOARD_REDIS_URL": redis_url,
            "SECRET_KEY": "bench",
            "WTF_CSRF_ENABLED": False,
            "DRY_RUN": True,
            "API_NODE_ALLOW_PRIVATE": True,
        }
    )
    with app.app_context():
        upgrade()
        user = User(email="bench@example.com")
        user.set_password("bench-password")
        db.session.add(user)
        db.session.commit()
        doc = generated_journey(args.nodes)
        journey = journeys.import_document(doc)
        client = app.test_client()
        client.post("/login", data={"email": "bench@example.com", "password": "bench-password"})
        hx = {"HX-Request": "true"}
        base = f"/journeys/{journey.id}"
        client.post(f"{base}/sample", data={"fields": "name = Ana\norder_id = 42"})
        samples: dict[str, list[float]] = {}
        for round_number in range(args.repeat):
            _timed(samples, "GET editor page", lambda: client.get(base))
            _timed(samples, "GET node panel (HTMX)", lambda: client.get(f"{base}/nodes/wait0", headers=hx))
            _timed(
                samples, "GET node fields (type swap)", lambda: client.get(f"{base}/node-fields?type=api&node_id=ask0")
            )
            _timed(samples, "GET condition fields", lambda: client.get(f"{base}/condition-fields?kind=var&prefix=e"))
            body = f"Question {round_number}, <<name|friend>>: reply YES or NO."
            _timed(
                samples,
                "POST check node (as you type)",
                lambda: client.post(f"{base}/nodes/ask0/check", data={"id": "ask0", "type": "message", "body": body}),
            )
            _timed(samples, "POST preview (as you type)", lambda: client.post(f"{base}/preview", data={"body": body}))
            _timed(
                samples,
                "POST try regex",
                lambda: client.post(f"{base}/try-regex", data={"regex": r"^\d{4}$", "try": "1234"}),
            )
            _timed(
                samples,
                "POST save node",
                lambda: client.post(
                    f"{base}/nodes/ask0",
                    headers=hx,
                    data={
                        "draft_revision": _revision(client, journey.id),
                        "id": "ask0",
                        "type": "message",
                        "body": body,
                    },
                ),
            )
            _timed(
                samples,
                "POST add edge",
                lambda: client.post(
                    f"{base}/nodes/wait0/edges",
                    headers=hx,
                    data={
                        "draft_revision": _revision(client, journey.id),
                        "to": "yes0",
                        "kind": "keywords",
                        "new_keyword": "ok, sure",
                    },
                ),
            )
            last = len(journeys.get(journey.id).draft["edges"]) - 1
            _timed(
                samples,
                "POST move edge",
                lambda: client.post(
                    f"{base}/edges/{last}/move",
                    headers=hx,
                    data={"draft_revision": _revision(client, journey.id), "direction": "up"},
                ),
            )
            moved = last - 1
            _timed(
                samples,
                "POST delete edge",
                lambda: client.post(
                    f"{base}/edges/{moved}/delete", headers=hx, data={"draft_revision": _revision(client, journey.id)}
                ),
            )
            _timed(
                samples,
                "POST add node",
                lambda: client.post(
                    f"{base}/nodes",
                    headers=hx,
                    data={
                        "draft_revision": _revision(client, journey.id),
                        "type": "message",
                        "id": "extra",
                        "after": "done",
                    },
                ),
            )
            _timed(
                samples,
                "POST delete node",
                lambda: client.post(
                    f"{base}/nodes/extra/delete", headers=hx, data={"draft_revision": _revision(client, journey.id)}
                ),
            )
            started = _timed(samples, "POST simulator start", lambda: client.post(f"{base}/simulator", headers=hx))
            token = re.search(r'name="token" value="([^"]+)"', started.text).group(1)
            _timed(
                samples,
                "POST simulator reply",
                lambda: client.post(f"{base}/simulator/reply", headers=hx, data={"token": token, "text": "yes"}),
            )
            client.post(f"{base}/simulator-reset", headers=hx)
            _timed(samples, "GET versions", lambda: client.get(f"{base}/versions"))
        print(
            f"designer endpoints, {args.nodes}-node journey, {args.repeat} rounds "
            f"({db.engine.dialect.name}); server time in ms"
        )
        print(f"{'endpoint':34} {'p50':>7} {'p95':>7} {'max':>7}")
        for name, values in samples.items():
            values.sort()
            p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
            print(f"{name:34} {statistics.median(values):7.1f} {p95:7.1f} {values[-1]:7.1f}")


if __name__ == "__main__":
    main()
