"""The replies test bench: where each reply goes out of a wait node, with the engine's conditions."""

import io

import pytest

from app.journeys import testbench
from tests.journeys.test_designer import draft_of, load_example, revision_of
from tests.runs.test_runs_helpers import create_journey, reply, settle, start


@pytest.fixture
def welcome_doc():
    return load_example("welcome")


def wait_node(doc) -> str:
    return next(node["id"] for node in doc["nodes"] if node["type"] == "wait")


def test_route_uses_the_engines_conditions(welcome_doc):
    node_id = wait_node(welcome_doc)
    rows = testbench.route(welcome_doc, node_id, ["YES please", "Sim!", "no", "maybe later", "stop it"])
    taken = {row.reply: (row.condition, row.matched) for row in rows}
    assert taken["YES please"][1] and taken["Sim!"][1]
    assert not taken["maybe later"][1]
    assert rows[3].words == ["maybe", "later"]


def test_route_refuses_a_node_that_is_not_a_wait(welcome_doc):
    with pytest.raises(testbench.BenchError, match="not a wait node"):
        testbench.route(welcome_doc, welcome_doc["nodes"][0]["id"], ["x"])


def test_add_keyword_extends_the_edge_once(welcome_doc):
    node_id = wait_node(welcome_doc)
    [(index, edge), *_] = testbench.keyword_edges(welcome_doc, node_id)
    testbench.add_keyword(welcome_doc, node_id, index, "Maybe")
    testbench.add_keyword(welcome_doc, node_id, index, "MAYBE")
    assert welcome_doc["edges"][index]["when"]["keywords"].count("Maybe") == 1
    assert testbench.route(welcome_doc, node_id, ["maybe later"])[0].edge_index == index
    with pytest.raises(testbench.BenchError):
        testbench.add_keyword(welcome_doc, node_id, 999, "x")


def test_replies_from_csv_read_the_body_column_and_cap_the_count():
    data = "From,Body\n+1500,yes\n+1501,\n+1502,não\n".encode()
    assert testbench.replies_from_csv(data) == ["yes", "não"]
    assert testbench.replies_from_csv(b"ok\nfine\n") == ["ok", "fine"]
    with pytest.raises(testbench.BenchError, match="at most"):
        testbench.replies_from_text("\n".join(["x"] * (testbench.MAX_REPLIES + 1)))


def test_bench_over_http_highlights_unmatched_and_adds_a_keyword(client, welcome_doc):
    journey = create_journey(welcome_doc)
    node_id = wait_node(welcome_doc)
    url = f"/journeys/{journey.id}/nodes/{node_id}/testbench"

    result = client.post(url, data={"replies": "yes\nmaybe later"})
    assert result.status_code == 200
    assert "1 matched" in result.text and "bench-unmatched" in result.text

    page = client.get(f"/journeys/{journey.id}/nodes/{node_id}")
    [(index, _edge), *_] = testbench.keyword_edges(welcome_doc, node_id)
    added = client.post(
        f"{url}/keyword",
        data={"draft_revision": revision_of(page.text), "edge": index, "word": "maybe", "replies": "yes\nmaybe later"},
    )
    assert added.status_code == 200 and "Added <code>maybe</code>" in added.text
    assert "maybe" in draft_of(journey)["edges"][index]["when"]["keywords"]
    assert "2 matched" in added.text


def test_bench_takes_the_runs_unmatched_replies(client, api, welcome_doc):
    journey_id = create_journey(welcome_doc).id  # read before the jobs end the session holding the row
    node_id = wait_node(welcome_doc)
    phone = "+15005550901"
    start(api, journey_id, [{"phone": phone, "name": "Ana"}])
    settle()
    reply(client, phone, "what is this")
    settle()

    result = client.post(f"/journeys/{journey_id}/nodes/{node_id}/testbench", data={"source": "runs"})

    assert "what is this" in result.text and "bench-unmatched" in result.text  # it took the fallback


def test_bench_says_when_no_run_has_unmatched_replies(client, welcome_doc):
    journey = create_journey(welcome_doc)
    result = client.post(f"/journeys/{journey.id}/nodes/{wait_node(welcome_doc)}/testbench", data={"source": "runs"})
    assert result.status_code == 422 and "no run of this journey has an unmatched reply" in result.text


def test_bench_upload(client, welcome_doc):
    journey = create_journey(welcome_doc)
    node_id = wait_node(welcome_doc)
    data = {"file": (io.BytesIO(b"Body\nyes\nhmm\n"), "inbound.csv")}
    result = client.post(
        f"/journeys/{journey.id}/nodes/{node_id}/testbench", data=data, content_type="multipart/form-data"
    )
    assert result.status_code == 200 and "2 replies" in result.text
    assert "hmm" in result.text and "bench-unmatched" in result.text
