"""JSON API for campaigns: every route, its answers and its errors (401, 400, 404, 413), with a real worker."""

import io
import time

import pytest

from app.extensions import db
from app.models import Campaign, Message
from app.queues import get_queue
from tests.conftest import drain
from tests.examples import EXAMPLES_DIR

MESSY = (EXAMPLES_DIR / "contacts-messy.csv").read_bytes()


def messages(campaign_id: int) -> list[Message]:
    db.session.expire_all()
    return db.session.scalars(db.select(Message).filter_by(campaign_id=campaign_id).order_by(Message.id)).all()


def test_send_rows_renders_the_body_per_row_and_reports_bad_numbers(api, fake_twilio):
    response = api.post(
        "/api/campaign/send",
        json={
            "name": "Orders",
            "body": "Hi <<name>>, order <<order>> is ready",
            "channel": "sms",
            "rows": [
                {"phone": "(415) 555-0132", "name": "Carla", "order": 7},
                {"phone": "not a phone", "name": "Bad"},
                {"phone": "+15005550006", "name": "Ana", "order": "A-1"},
                {"phone": "+1 500 555 0006", "name": "Ana again"},
            ],
        },
    )
    assert response.status_code == 202, response.json
    answer = response.json
    assert answer["success"] is True and answer["status"] == "queued" and answer["total"] == 2
    assert answer["rejected"] == [
        {"index": 1, "reason": "invalid phone number 'not a phone'"},
        {"index": 3, "reason": "duplicate of index 2 (+15005550006)"},
    ]
    campaign_id = answer["campaignId"]
    drain()
    assert sorted((call.to, call.body) for call in fake_twilio.calls) == [
        ("+14155550132", "Hi Carla, order 7 is ready"),
        ("+15005550006", "Hi Ana, order A-1 is ready"),
    ]
    detail = api.get(f"/api/campaign/{campaign_id}").json
    assert detail["name"] == "Orders" and detail["total"] == 2 and detail["sent"] == 2
    assert detail["queued"] == 0 and detail["delivered"] == 0 and detail["failed"] == 0
    assert detail["status"] == "completed" and detail["created_at"].endswith("Z")
    assert detail["rejected"][0] == {"index": 1, "reason": "invalid phone number 'not a phone'"}


def test_send_messages_form_renders_each_body_with_its_vars(api, fake_twilio):
    response = api.post(
        "/api/campaign/send",
        json={
            "messages": [
                {"to": "+15005550006", "body": "Hello <<first>>", "channel": "sms", "vars": {"first": "Ana"}},
                {
                    "to": "whatsapp:+15005550007",
                    "body": "Olá <<first>>",
                    "channel": "whatsapp",
                    "vars": {"first": "Bia"},
                },
                {"to": "12", "body": "never", "channel": "sms"},
            ]
        },
    )
    assert response.status_code == 202, response.json
    assert response.json["total"] == 2 and [r["index"] for r in response.json["rejected"]] == [2]
    drain()
    calls = {call.to: call for call in fake_twilio.calls}
    assert calls["+15005550006"].body == "Hello Ana"
    assert calls["whatsapp:+15005550007"].body == "Olá Bia"
    assert calls["whatsapp:+15005550007"].fields["From"] == "whatsapp:+15005550002"


def test_upload_reports_rejected_lines(api, fake_twilio):
    response = api.post(
        "/api/campaign/upload",
        content_type="multipart/form-data",
        data={
            "file": (io.BytesIO(MESSY), "messy.csv"),
            "body": "Olá <<Nome>>",
            "name": "Messy",
            "channel": "sms",
        },
    )
    assert response.status_code == 202, response.json
    assert response.json["total"] == 2
    assert [row["line"] for row in response.json["rejected"]] == [3, 4, 5, 6]
    drain()
    assert sorted(call.body for call in fake_twilio.calls) == ["Olá Júlia", 'Olá Maria "Mari" Souza']


def test_history_is_newest_first_with_counts(api):
    first = api.post("/api/campaign/send", json={"body": "one", "rows": [{"phone": "+15005550006"}]}).json
    second = api.post(
        "/api/campaign/send",
        json={"name": "Two", "body": "two", "rows": [{"phone": "+15005550006"}, {"phone": "+15005550007"}]},
    ).json
    history = api.get("/api/campaign/history").json
    assert [c["id"] for c in history] == [second["campaignId"], first["campaignId"]]
    assert history[0]["name"] == "Two" and history[0]["total"] == 2 and history[0]["queued"] == 2
    assert {"sent", "delivered", "failed", "created_at", "status"} <= set(history[0])
    assert [c["id"] for c in api.get("/api/campaign/history?limit=1&offset=1").json] == [first["campaignId"]]
    assert api.get("/api/campaign/history?limit=0").status_code == 400


def test_delete_stops_queued_messages(api, fake_twilio):
    campaign_id = api.post("/api/campaign/send", json={"body": "hi", "rows": [{"phone": "+15005550006"}]}).json[
        "campaignId"
    ]
    deleted = api.delete(f"/api/campaign/{campaign_id}")
    assert deleted.status_code == 200 and deleted.json["success"] is True
    drain()
    assert fake_twilio.calls == []
    assert [m.status for m in messages(campaign_id)] == ["canceled"]
    assert api.get(f"/api/campaign/{campaign_id}").status_code == 404
    assert api.delete(f"/api/campaign/{campaign_id}").status_code == 404
    assert api.get("/api/campaign/history").json == []


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", "/api/campaign/send"),
        ("post", "/api/campaign/upload"),
        ("get", "/api/campaign/history"),
        ("get", "/api/campaign/1"),
        ("delete", "/api/campaign/1"),
    ],
)
def test_every_route_needs_a_valid_token(app, method, path):
    client = app.test_client()
    missing = getattr(client, method)(path)
    assert missing.status_code == 401 and "error" in missing.json
    wrong = getattr(client, method)(path, headers={"Authorization": "Bearer jd_wrong"})
    assert wrong.status_code == 401 and wrong.json == {"error": "invalid API token"}


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"body": "hi"}, "messages"),
        ({"rows": [{"phone": "+15005550006"}]}, "body"),
        ({"body": "  ", "rows": [{"phone": "+15005550006"}]}, "body"),
        ({"body": "Hi <<name", "rows": [{"phone": "+15005550006"}]}, "body"),
        ({"body": "hi", "channel": "fax", "rows": [{"phone": "+15005550006"}]}, "channel"),
        ({"body": "hi", "rows": "+15005550006"}, "rows"),
        ({"body": "hi", "rows": []}, "rows"),
        ({"body": "hi", "rows": [{"phone": "+15005550006"}, "+15005550007"]}, "rows[1]"),
        ({"body": "hi", "name": 12, "rows": [{"phone": "+15005550006"}]}, "name"),
        ({"messages": [{"to": "+15005550006", "body": "ok"}, {"to": "+15005550007"}]}, "messages[1].body"),
        ({"messages": [{"to": "+15005550006", "body": "ok", "channel": "pigeon"}]}, "messages[0].channel"),
        ({"messages": [{"to": "+15005550006", "body": "ok", "vars": [1]}]}, "messages[0].vars"),
    ],
)
def test_send_refuses_bad_fields_naming_them(api, payload, field):
    response = api.post("/api/campaign/send", json=payload)
    assert response.status_code == 400, response.json
    assert response.json["field"] == field and response.json["error"].startswith(field)
    assert db.session.scalar(db.select(db.func.count()).select_from(Campaign)) == 0


def test_send_refuses_bad_json_and_all_invalid_rows(api):
    bad_json = api.post("/api/campaign/send", data="{nope", content_type="application/json")
    assert bad_json.status_code == 400 and "JSON object" in bad_json.json["error"]
    not_object = api.post("/api/campaign/send", json=[1, 2])
    assert not_object.status_code == 400
    all_invalid = api.post("/api/campaign/send", json={"body": "hi", "rows": [{"phone": "x"}, {"name": "y"}]})
    assert all_invalid.status_code == 400 and all_invalid.json["field"] == "rows"
    assert [row["reason"] for row in all_invalid.json["rejected"]] == ["invalid phone number 'x'", "empty phone"]
    no_message = api.post("/api/campaign/send", json={"messages": [{"to": "x", "body": "hi"}]})
    assert no_message.status_code == 400 and no_message.json["field"] == "messages"
    assert no_message.json["rejected"] == [{"index": 0, "reason": "invalid phone number 'x'"}]


def test_upload_refuses_bad_input_naming_the_field(api):
    def post(**data):
        return api.post("/api/campaign/upload", content_type="multipart/form-data", data=data)

    assert post(body="hi").json["field"] == "file"
    assert post(file=(io.BytesIO(MESSY), "m.csv")).json["field"] == "body"
    assert post(file=(io.BytesIO(MESSY), "m.csv"), body="hi", channel="fax").json["field"] == "channel"
    no_phone = post(file=(io.BytesIO(b"a,b\n1,2\n"), "m.csv"), body="hi")
    assert no_phone.status_code == 400 and no_phone.json["field"] == "phone_column"
    assert "'a', 'b'" in no_phone.json["error"]
    chosen = post(file=(io.BytesIO(b"a,b\nAna,+15005550006\n"), "m.csv"), body="hi", phone_column="b")
    assert chosen.status_code == 202 and chosen.json["total"] == 1


def test_unknown_campaign_is_404(api):
    assert api.get("/api/campaign/999").status_code == 404
    assert api.get("/api/campaign/999").json["error"] == "no campaign 999"
    assert api.delete("/api/campaign/999").status_code == 404


def test_too_large_requests_are_413(app, api):
    app.config["MAX_CONTENT_LENGTH"] = 4096
    rows = [{"phone": f"+1500555{index:04d}"} for index in range(400)]
    response = api.post("/api/campaign/send", json={"body": "hi", "rows": rows})
    assert response.status_code == 413 and "error" in response.json
    upload = api.post(
        "/api/campaign/upload",
        content_type="multipart/form-data",
        data={"body": "hi", "file": (io.BytesIO(b"phone\n" + b"+15005550006\n" * 500), "big.csv")},
    )
    assert upload.status_code == 413 and "error" in upload.json


def test_100000_rows_are_created_and_enqueued_in_one_request(app, api, capsys):
    """Not a timing assertion: prints the figure, checks every message exists and is enqueued."""
    rows = [{"phone": f"+1415{2_000_000 + index:07d}", "name": f"n{index}"} for index in range(100_000)]
    started = time.perf_counter()
    response = api.post("/api/campaign/send", json={"body": "Hi <<name>>, your code is ready", "rows": rows})
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.json
    assert response.json["total"] == 100_000 and response.json["rejected"] == []
    campaign_id = response.json["campaignId"]
    count = db.session.scalar(db.select(db.func.count()).select_from(Message).filter_by(campaign_id=campaign_id))
    assert count == 100_000
    assert get_queue("messages").count == 100_000 // app.config["SEND_BATCH_SIZE"]
    with capsys.disabled():
        dialect = db.engine.dialect.name
        print(
            f"\nbench: POST /api/campaign/send with 100,000 rows on {dialect}: {elapsed:.2f} s "
            f"(validate + render + bulk insert + enqueue), {100_000 / elapsed:,.0f} rows/s"
        )
