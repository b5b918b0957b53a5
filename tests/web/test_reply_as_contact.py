"""Reply as a contact: an operator answers for a waiting contact through the same routing as Twilio's
signed webhook (stored inbound row with a synthetic sid, marked as typed by that operator)."""

import json

import pytest
from sqlalchemy import func, select

from app.cli import DEMO_JOURNEY
from app.extensions import db
from app.journeys import store as journeys
from app.models import InboundMessage, Participation, User
from app.runs import lifecycle
from tests.conftest import USER_EMAIL, csrf_token_of, drain
from tests.runs.test_run_pages import make_audience
from tests.web.test_security_roles import logged_in, make_user


@pytest.fixture
def waiting(app, client):
    """The demo journey run for two contacts in a dry run; both wait at `ask`."""
    app.config["DRY_RUN"] = True
    journey = journeys.import_document(json.loads(DEMO_JOURNEY.read_text(encoding="utf-8")))
    journeys.publish(journey)
    audience = make_audience("Buyers", 2)
    run_id = lifecycle.start_run(journey, audience_id=audience.id).id
    drain()
    rows = db.session.scalars(select(Participation).where(Participation.run_id == run_id).order_by(Participation.id))
    participations = list(rows)
    assert [(p.state, p.node_id) for p in participations] == [("waiting", "ask")] * 2
    return Ids(run_id), [Ids(p.id) for p in participations]


class Ids:
    """An id kept beyond the session that loaded its row."""

    def __init__(self, id_: int):
        self.id = id_


def reply_url(run, participation):
    return f"/runs/{run.id}/contacts/{participation.id}/reply"


def test_timeline_offers_the_waiting_nodes_answers_as_buttons(client, waiting):
    run, (first, _) = waiting
    page = client.get(f"/runs/{run.id}/contacts/{first.id}")
    assert page.status_code == 200
    assert f"reply-as-contact-{first.id}" in page.text
    assert 'name="quick_text" value="yes"' in page.text and 'name="quick_text" value="no"' in page.text
    assert "Dry run: message recorded, not sent" in page.text and "Twilio accepted" not in page.text


def test_a_tapped_answer_walks_the_demo_to_the_end_and_is_marked_as_typed_by_the_operator(client, waiting):
    run, (first, second) = waiting
    user_id = db.session.scalar(select(User.id))
    response = client.post(reply_url(run, first), data={"quick_text": "no"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "typed by " + USER_EMAIL in response.text
    assert "it is now" in response.text
    drain()
    db.session.expire_all()
    assert db.session.get(Participation, first.id).state == "completed"
    assert db.session.get(Participation, second.id).state == "waiting"  # only the one answered moved
    inbound = db.session.scalar(select(InboundMessage))
    assert inbound.sid.startswith("OP") and inbound.entered_by_id == user_id
    assert inbound.outcome == "matched" and inbound.participation_id == first.id and inbound.channel == "sms"
    timeline = client.get(f"/runs/{run.id}/contacts/{first.id}").text
    assert "sorry" in timeline and "reply-as-contact-" not in timeline  # finished: nothing to answer


def test_a_typed_reply_that_matches_nothing_takes_the_fallback(client, waiting):
    run, (first, _) = waiting
    response = client.post(reply_url(run, first), data={"text": "maybe"}, follow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/contacts/{first.id}")
    drain()
    db.session.expire_all()
    participation = db.session.get(Participation, first.id)
    assert (participation.state, participation.node_id) == ("waiting", "ask")  # again → ask
    assert "matched" in client.get(f"/runs/{run.id}/contacts/{first.id}").text


def test_stop_typed_as_the_contact_opts_it_out(client, waiting):
    run, (first, _) = waiting
    client.post(reply_url(run, first), data={"text": "STOP"}, headers={"HX-Request": "true"})
    db.session.expire_all()
    participation = db.session.get(Participation, first.id)
    assert participation.state == "opted_out" and participation.contact.opted_out


def test_an_empty_reply_is_refused_and_nothing_is_stored(client, waiting):
    run, (first, _) = waiting
    response = client.post(reply_url(run, first), data={"text": "  "}, headers={"HX-Request": "true"})
    assert response.status_code == 422 and "Type a reply" in response.text
    assert db.session.scalar(select(InboundMessage)) is None


def as_role(app, role: str):
    make_user(f"{role}@example.com", role)
    client = logged_in(app, f"{role}@example.com")
    client.environ_base["HTTP_X_CSRFTOKEN"] = csrf_token_of(client.get("/").text)
    return client


def test_with_real_twilio_an_admin_may_reply_but_an_editor_may_not(app, client, waiting):
    run, (first, second) = waiting
    app.config["DRY_RUN"] = False
    editor = as_role(app, "editor")
    page = editor.get(f"/runs/{run.id}/contacts/{first.id}").text
    assert "only an admin may reply as a contact" in page and 'name="quick_text"' not in page
    assert editor.post(reply_url(run, first), data={"text": "yes"}).status_code == 403
    assert db.session.scalar(select(InboundMessage)) is None
    page = client.get(f"/runs/{run.id}/contacts/{second.id}").text  # `client` is an admin
    assert "Admins only" in page and 'name="quick_text" value="yes"' in page
    response = client.post(reply_url(run, second), data={"quick_text": "yes"}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and "it is now" in response.text


def test_in_a_dry_run_an_editor_may_reply_and_a_viewer_never(app, waiting):
    run, (first, second) = waiting
    editor = as_role(app, "editor")
    response = editor.post(reply_url(run, first), data={"quick_text": "yes"}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and "it is now" in response.text
    viewer = as_role(app, "viewer")
    page = viewer.get(f"/runs/{run.id}/contacts/{second.id}").text
    assert 'name="quick_text"' not in page and "Send as the contact" not in page and "read-only access" in page
    assert "reply-link" not in viewer.get(f"/runs/{run.id}").text
    assert viewer.post(reply_url(run, second), data={"text": "yes"}).status_code == 403
    db.session.expire_all()
    assert db.session.get(Participation, second.id).state == "waiting"
    assert db.session.scalar(select(func.count()).select_from(InboundMessage)) == 1


def test_the_inbox_offers_reply_as_the_contact_for_a_waiting_contact(app, client, waiting):
    run, (first, second) = waiting
    client.post(reply_url(run, first), data={"text": "maybe"}, headers={"HX-Request": "true"})  # fallback: waits again
    drain()
    page = client.get("/inbox/").text
    inbound_id = db.session.scalar(select(InboundMessage.id))
    assert f'id="inbox-reply-as-{inbound_id}"' in page
    assert f'action="/runs/{run.id}/contacts/{first.id}/reply"' in page and 'name="quick_text" value="yes"' in page
    assert (
        'hx-post="/runs/' not in page.split(f'id="inbox-reply-as-{inbound_id}"')[1]
    )  # a plain post: back to the inbox
    response = client.post(reply_url(run, first), data={"quick_text": "yes", "next": "/inbox/"})
    assert response.status_code == 302 and response.headers["Location"] == "/inbox/"
    drain()
    db.session.expire_all()
    assert db.session.get(Participation, first.id).state == "completed"
    page = client.get("/inbox/").text
    assert "inbox-reply-as-" not in page  # nobody on the page waits any more
    assert "Replied “yes” as the contact" in page


def test_a_participation_of_another_run_is_404(client, waiting):
    run, (first, _) = waiting
    assert client.post(f"/runs/{run.id + 1}/contacts/{first.id}/reply", data={"text": "yes"}).status_code == 404


def test_the_contact_page_offers_reply_as_the_contact_while_it_waits(client, waiting):
    run, (first, _) = waiting
    contact_id = db.session.get(Participation, first.id).contact_id
    page = client.get(f"/contacts/{contact_id}").text
    assert f'id="reply-as-contact-contact-{contact_id}"' in page
    assert f'action="/runs/{run.id}/contacts/{first.id}/reply"' in page and 'name="quick_text" value="no"' in page
    back = f"/contacts/{contact_id}"
    response = client.post(reply_url(run, first), data={"quick_text": "no", "next": back})
    assert response.status_code == 302 and response.headers["Location"] == back
    drain()
    assert "reply-as-contact-contact-" not in client.get(back).text  # finished: nothing to answer
