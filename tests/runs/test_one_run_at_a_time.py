"""A contact is in one run of a journey at a time: a start leaves out those a run of the journey has active.

The pre-flight counts them as `already_active`; the start keeps that promise (a second run would send
each of them every message again), records how many it left out, and says so on the run page and in
the API. Two starts at once never both take a contact.
"""

import threading

from app.contacts import audiences
from app.extensions import db
from app.models import Participation, Run
from app.runs import lifecycle
from tests.runs.test_runs_helpers import (
    bodies_to,
    create_journey,
    example,
    participations,
    phones,
    reply,
    settle,
    start,
)


def _audience(name: str, numbers: list[str]) -> int:
    audience, rejected = audiences.import_audience(name, ("phone\n" + "\n".join(numbers) + "\n").encode())
    assert not rejected
    return audience.id


def test_a_start_leaves_out_contacts_active_in_a_run_of_the_journey(app, api, client, fake_twilio):
    first, second, third = phones(3)
    journey_id = create_journey(example("welcome")).id  # its contacts wait for a reply
    start(api, journey_id, [{"phone": first}, {"phone": second}])
    settle()
    audience_id = _audience("Overlap", [first, second, third])

    preview = api.post(f"/api/journeys/{journey_id}/runs/preview", json={"audience_id": audience_id}).json
    assert preview["recipients"] == 1 and preview["suppressed"]["already_active"] == 2
    assert any("leaves them out" in warning for warning in preview["warnings"])
    run_id = api.post(f"/api/journeys/{journey_id}/runs", json={"audience_id": audience_id}).json["run_id"]
    settle()

    assert list(participations(run_id)) == [third]
    sent = {phone: len(bodies_to(fake_twilio, phone)) for phone in (first, second, third)}
    print("messages per contact after the second start:", sent)
    assert sent == {first: 1, second: 1, third: 1}  # nobody got the first message twice
    summary = api.get(f"/api/runs/{run_id}").json
    assert (summary["total"], summary["already_active"]) == (1, 2)
    page = client.get(f"/runs/{run_id}").text
    assert "Left out at the start: 2 contacts" in page and "already active in a run of this journey" in page

    reply(app.test_client(), first, "yes")  # `first` finishes its run: it may start again
    settle()
    again = api.post(f"/api/journeys/{journey_id}/runs", json={"audience_id": audience_id}).json["run_id"]
    settle()
    assert list(participations(again)) == [first]
    assert api.get(f"/api/runs/{again}").json["already_active"] == 2


def test_other_journeys_do_not_count(app, api, fake_twilio):
    phone = phones(1)[0]
    start(api, create_journey(example("welcome")).id, [{"phone": phone}])
    other = create_journey(example("welcome")).id
    run_id = start(api, other, [{"phone": phone}])
    settle()
    assert list(participations(run_id)) == [phone]
    assert db.session.get(Run, run_id).already_active == 0


def test_a_start_where_everyone_is_already_active_is_blocked(app, api, fake_twilio):
    numbers = phones(2)
    journey_id = create_journey(example("welcome")).id
    start(api, journey_id, [{"phone": phone} for phone in numbers])
    settle()
    audience_id = _audience("Same people", numbers)
    runs_before = db.session.query(Run).count()
    response = api.post(f"/api/journeys/{journey_id}/runs", json={"audience_id": audience_id})
    assert response.status_code == 409
    assert "already active in a run of this journey" in response.json["error"]
    assert db.session.query(Run).count() == runs_before


def test_two_starts_at_once_never_both_take_a_contact(app, fake_twilio):
    """Two runs of one journey prepared at the same moment, in two threads with their own sessions."""
    numbers = phones(300)
    journey = create_journey(example("welcome"))
    audience_id = _audience("Everyone", numbers)
    run_ids = [lifecycle.start_run(journey, audience_id=audience_id).id for _ in range(2)]
    ready, errors = threading.Barrier(2), []

    def prepare(run_id: int) -> None:
        with app.app_context():
            try:
                ready.wait()
                lifecycle.prepare_run(run_id)
            except Exception as error:  # reported below, with the other thread's result
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=prepare, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    db.session.expire_all()
    runs = [db.session.get(Run, run_id) for run_id in run_ids]
    taken = [row.contact_id for row in db.session.query(Participation).filter(Participation.run_id.in_(run_ids))]
    doubled = len(taken) - len(set(taken))
    print(f"totals {[run.total for run in runs]}, left out {[run.already_active for run in runs]}, doubled {doubled}")
    assert doubled == 0 and len(taken) == len(numbers)
    assert sum(run.total for run in runs) == len(numbers) == sum(run.already_active for run in runs)
