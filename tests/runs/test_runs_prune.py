"""Pruning finished runs: the CLI and the page button archive results to CSV, delete the history and message
texts, and the run's page and API answer keep the same counts. Both databases, real RQ jobs."""

import csv
import re
from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import InboundMessage, Message, Participation, Run, Step, utcnow
from app.runs import prune
from tests.runs.test_runs_helpers import create_journey, example, phones, reply, run_row, settle, start


def _finished_run(app, api, client) -> int:
    """The welcome journey for 3 contacts: one replies yes, one no, one is stopped while waiting."""
    ana, bia, caio = phones(3)
    run_id = start(api, create_journey(example("welcome")).id, [{"phone": p, "name": p[-2:]} for p in (ana, bia, caio)])
    settle()
    reply(client, ana, "yes")
    reply(client, bia, "no")
    settle()
    assert api.post(f"/api/runs/{run_id}/stop").status_code == 200
    return run_id


def _count(model, *criteria) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*criteria))


def test_cli_prunes_finished_runs_and_the_counts_stay(app, api, client, fake_twilio, tmp_path):
    app.config["RUN_ARCHIVE_DIR"] = str(tmp_path / "archive")
    run_id = _finished_run(app, api, client)
    live = start(api, create_journey(example("welcome")).id, [{"phone": phones(1, start=50)[0]}])
    settle()
    before = api.get(f"/api/runs/{run_id}").json
    page_before = client.get(f"/runs/{run_id}/_partials/live").text
    assert _count(Step, Step.run_id == run_id) > 0
    tomorrow = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%d")

    listed = app.test_cli_runner().invoke(args=["runs", "prune", "--finished-before", tomorrow, "--dry-run"])
    assert listed.exit_code == 0 and f"Would prune 1 run(s): {run_id}" in listed.output
    result = app.test_cli_runner().invoke(args=["runs", "prune", "--finished-before", tomorrow])
    print(result.output)
    assert result.exit_code == 0, result.output

    archive = tmp_path / "archive" / f"run-{run_id}.csv"
    rows = list(csv.DictReader(archive.open(encoding="utf-8")))
    assert sorted((row["state"], row["replies"]) for row in rows) == [
        ("completed", "no"),
        ("completed", "yes"),
        ("stopped", ""),
    ]
    db.session.expire_all()
    assert _count(Step, Step.run_id == run_id) == 0
    of_run = select(Participation.id).where(Participation.run_id == run_id)
    assert _count(Message, Message.participation_id.in_(of_run), Message.body.is_not(None)) == 0
    assert _count(InboundMessage, InboundMessage.participation_id.in_(of_run), InboundMessage.body != "") == 0
    assert run_row(run_id).pruned_at is not None and run_row(live).pruned_at is None
    assert _count(Step, Step.run_id == live) > 0  # a live run is never touched
    assert api.get(f"/api/runs/{run_id}").json == before
    page_after = client.get(f"/runs/{run_id}/_partials/live").text
    assert _numbers(page_before) and _numbers(page_after) == _numbers(page_before)
    assert "History pruned" in client.get(f"/runs/{run_id}").text
    again = app.test_cli_runner().invoke(args=["runs", "prune", "--finished-before", tomorrow])
    assert again.exit_code == 0 and "No finished run left to prune" in again.output


def _numbers(html: str) -> list[str]:
    """The figures a page shows (the elapsed clock and relative times aside)."""
    text = re.sub(r'id="run-elapsed">[^<]*<', "", html)
    text = re.sub(r"\b\d+ (seconds?|minutes?|hours?) ago\b", "", text)
    return re.findall(r">\s*([\d,]+)\s*<", text)


def test_the_page_button_asks_then_prunes_through_a_worker(app, api, client, fake_twilio, tmp_path):
    app.config["RUN_ARCHIVE_DIR"] = str(tmp_path)
    run_id = _finished_run(app, api, client)
    assert 'id="prune-run"' in client.get(f"/runs/{run_id}").text
    confirm = client.get(f"/runs/{run_id}/prune")
    assert confirm.status_code == 200 and 'id="confirm-prune"' in confirm.text and "csrf_token" in confirm.text
    token = client.environ_base.pop("HTTP_X_CSRFTOKEN")
    assert client.post(f"/runs/{run_id}/prune").status_code == 400  # no CSRF token: refused
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    assert client.post(f"/runs/{run_id}/prune").status_code == 302
    settle()
    assert (tmp_path / f"run-{run_id}.csv").exists() and run_row(run_id).pruned_at is not None
    assert 'id="prune-run"' not in client.get(f"/runs/{run_id}").text


def test_a_live_run_cannot_be_pruned(app, api, client, fake_twilio):
    run_id = start(api, create_journey(example("welcome")).id, [{"phone": phones(1)[0]}])
    settle()
    assert client.post(f"/runs/{run_id}/prune").status_code == 302
    settle()
    assert run_row(run_id).pruned_at is None and _count(Step, Step.run_id == run_id) > 0
    try:
        prune.prune_run(run_id)
    except prune.NotPrunable as error:
        assert "only a finished run can be pruned" in str(error)
    else:
        raise AssertionError("a live run was pruned")
    assert db.session.get(Run, run_id).final_counts is None
