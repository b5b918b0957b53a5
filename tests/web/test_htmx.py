"""`app.web.htmx`: one way to answer HTMX requests in every blueprint."""

from flask import render_template_string

from app.journeys import store as journeys
from app.web import htmx

DOC = {
    "format": "journey/v1",
    "name": "htmx",
    "nodes": [{"id": "start", "type": "audience"}, {"id": "done", "type": "end"}],
    "edges": [{"from": "start", "to": "done"}],
}
FRAGMENT = {"HX-Request": "true"}
RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}


def test_a_history_restore_gets_the_whole_page_not_the_fragment(client):
    journey = journeys.create_journey(DOC)
    path = f"/journeys/{journey.id}/nodes/start"
    fragment, page = client.get(path, headers=FRAGMENT), client.get(path, headers=RESTORE)
    assert fragment.status_code == page.status_code == 200
    assert "<html" not in fragment.text and 'id="panel"' in fragment.text
    assert "<html" in page.text and 'id="panel"' in page.text


def test_fragments_aimed_at_a_target(app):
    with app.test_request_context("/", headers={**FRAGMENT, "HX-Target": "message-log"}):
        assert htmx.wants_fragment() and htmx.wants_fragment("message-log") and not htmx.wants_fragment("contacts")
    with app.test_request_context("/", headers={**RESTORE, "HX-Target": "message-log"}):
        assert not htmx.wants_fragment("message-log")
    with app.test_request_context("/"):
        assert not htmx.wants_fragment()


def test_redirects_and_refusals(app):
    with app.test_request_context("/", headers=FRAGMENT):
        answer = htmx.redirect("/there")
        assert (answer.status_code, answer.headers["HX-Redirect"]) == (204, "/there")
        refused = htmx.refuse(render_template_string("<p>{{ why }}</p>", why="no"), 409, "#conflict")
        assert refused.status_code == 409 and refused.get_data(as_text=True) == "<p>no</p>"
        assert (refused.headers["HX-Retarget"], refused.headers["HX-Reswap"]) == ("#conflict", "innerHTML")
        assert htmx.trigger("x", "changed").headers["HX-Trigger"] == "changed"
    with app.test_request_context("/"):
        answer = htmx.redirect("/there")
        assert (answer.status_code, answer.headers["Location"]) == (303, "/there")
