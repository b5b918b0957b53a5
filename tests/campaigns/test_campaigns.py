"""Campaign pages end to end: upload, preview (live re-render), send, real RQ worker, fake Twilio, callbacks.

Everything goes through the real form posts with CSRF (the `client` fixture),
the real importer, a real SimpleWorker (`drain`) and the twilio SDK against
the fake Twilio server; status callbacks are signed like Twilio signs them.
"""

import csv
import io
import re

from app.extensions import db
from app.models import Campaign, Message
from app.sending import callbacks
from tests.conftest import TEST_AUTH_TOKEN, drain
from tests.examples import EXAMPLES_DIR
from tests.fake_twilio import sign, status_callback_params

CONTACTS = (EXAMPLES_DIR / "contacts.csv").read_bytes()
MESSY = (EXAMPLES_DIR / "contacts-messy.csv").read_bytes()
STATUS_URL = "http://testserver.local/webhooks/twilio/status"
TEMPLATE = "Hi <<name>>, order <<order_id>> ships to <<city>>."


def upload(client, data: bytes = CONTACTS, body: str = TEMPLATE, **fields):
    form = {
        "name": "Spring",
        "body": body,
        "channel": "sms",
        "phone_column": "",
        "file": (io.BytesIO(data), "contacts.csv"),
        **fields,
    }
    return client.post("/campaigns/new", data=form, content_type="multipart/form-data")


def draft_of(client, **fields) -> Campaign:
    response = upload(client, **fields)
    assert response.status_code == 302, response.text
    campaign_id = int(re.search(r"/campaigns/(\d+)/preview", response.location).group(1))
    return db.session.get(Campaign, campaign_id)


def send(client, campaign: Campaign, body: str = TEMPLATE, channel: str = "sms"):
    return client.post(f"/campaigns/{campaign.id}/send", data={"name": campaign.name, "body": body, "channel": channel})


def callback(client, sid: str, status: str, error_code=None):
    params = status_callback_params(sid, status, error_code)
    return client.post(
        "/webhooks/twilio/status",
        data=params,
        headers={"X-Twilio-Signature": sign(STATUS_URL, params, TEST_AUTH_TOKEN)},
    )


def messages(campaign_id: int) -> list[Message]:
    db.session.expire_all()  # see what the requests and the worker committed
    return db.session.scalars(db.select(Message).filter_by(campaign_id=campaign_id).order_by(Message.id)).all()


def test_campaign_end_to_end(client, fake_twilio):
    form = client.get("/campaigns/new")
    assert form.status_code == 200 and 'name="file"' in form.text

    campaign = draft_of(client)
    campaign_id = campaign.id  # drain() ends the session: keep ids, not ORM objects
    assert campaign.status == "draft" and campaign.total == 3 and messages(campaign_id) == []
    preview = client.get(f"/campaigns/{campaign_id}/preview")
    assert preview.status_code == 200
    assert "Hi Ana, order A-1001 ships to Curitiba." in preview.text
    assert "Hi Carla, order A-1003 ships to Oakland." in preview.text
    assert "duplicate of line 2 (+15005550006)" in preview.text and ">5<" in preview.text
    assert "GSM-7" in preview.text and "UCS-2" in preview.text  # "São Paulo" needs UCS-2

    sent = send(client, campaign)
    assert sent.status_code == 302 and sent.location.endswith(f"/campaigns/{campaign_id}")
    assert [m.status for m in messages(campaign_id)] == ["queued"] * 3, "the request only queues"
    assert fake_twilio.calls == []

    detail = client.get(f"/campaigns/{campaign_id}")
    assert 'hx-trigger="every 1s"' in detail.text, "polls while messages are queued"

    drain()
    calls = sorted(fake_twilio.calls, key=lambda call: call.to)
    assert [(call.to, call.body) for call in calls] == [
        ("+14155550132", "Hi Carla, order A-1003 ships to Oakland."),
        ("+15005550006", "Hi Ana, order A-1001 ships to Curitiba."),
        ("+15005550007", "Hi Bruno, order A-1002 ships to São Paulo."),
    ]
    assert {call.fields["From"] for call in calls} == {"+15005550001"}
    assert {call.fields["StatusCallback"] for call in calls} == {STATUS_URL}

    progress = client.get(f"/campaigns/{campaign_id}/_progress", headers={"HX-Request": "true"})
    assert "every 1s" not in progress.text, "polling stops once nothing is queued"
    assert '<b id="count-sent">3</b>' in progress.text and '<b id="count-queued">0</b>' in progress.text

    by_to = {m.to_phone: m for m in messages(campaign_id)}
    assert callback(client, by_to["+15005550006"].sid, "delivered").status_code == 200
    assert callback(client, by_to["+15005550007"].sid, "delivered").status_code == 200
    assert callback(client, by_to["+14155550132"].sid, "undelivered", 30003).status_code == 200
    callbacks.apply_pending()  # stored by the webhook, applied by the workers' sweeper
    progress = client.get(f"/campaigns/{campaign_id}/_progress")
    assert '<b id="count-delivered">2</b>' in progress.text and '<b id="count-failed">1</b>' in progress.text

    detail = client.get(f"/campaigns/{campaign_id}")
    assert "30003" in detail.text and "unreachable" in detail.text
    assert by_to["+15005550006"].sid in detail.text

    history = client.get("/campaigns/")
    assert "Spring" in history.text and "completed" in history.text

    confirm = client.get(f"/campaigns/{campaign_id}/delete")
    assert confirm.status_code == 200 and "Delete" in confirm.text
    deleted = client.post(f"/campaigns/{campaign_id}/delete")
    assert deleted.status_code == 302
    history = client.get("/campaigns/").text
    assert "deleted" in history and "Spring" not in history[history.index('<table id="campaigns">') :]
    assert client.get(f"/campaigns/{campaign_id}").status_code == 404
    assert len(messages(campaign_id)) == 3, "the message log is kept"
    assert "Hi Ana, order A-1001" in client.get("/outbox/").text


def test_messy_csv_shows_rejected_rows_with_lines_and_downloads_them(client):
    campaign = draft_of(client, data=MESSY, body="Olá <<Nome>>, pedido <<Pedido>>")
    preview = client.get(f"/campaigns/{campaign.id}/preview").text
    assert "Olá Júlia, pedido B-1" in preview
    for line, reason in [
        (3, "too long for region US"),
        (4, "invalid phone number &#39;not-a-number&#39;"),
        (5, "empty phone"),
        (6, "duplicate of line 2 (+5541991234567)"),
    ]:
        assert re.search(rf'<td class="num">{line}</td><td>[^<]*{re.escape(reason)}', preview), (line, reason)

    download = client.get(f"/campaigns/{campaign.id}/rejected.csv")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[0] == ["line", "reason", "Telefone", "Nome", "Pedido"]
    assert [row[0] for row in rows[1:]] == ["3", "4", "5", "6"]
    assert rows[2][2:] == ["not-a-number", "Ruim", "B-3"]


def test_preview_rerenders_the_typed_template_from_the_draft(client):
    campaign = draft_of(client)
    fragment = client.post(
        f"/campaigns/{campaign.id}/preview",
        headers={"HX-Request": "true"},
        data={"body": "Oi <<name>> <<coupon>> <<tier|friend>> 😀", "channel": "sms"},
    )
    assert fragment.status_code == 200 and fragment.text.lstrip().startswith('<div id="preview"')
    assert "Oi Ana " in fragment.text
    assert '<mark class="pill-missing" title="no value for coupon">&lt;&lt;coupon&gt;&gt;</mark>' in fragment.text
    assert re.search(r"No column fills\s*<code>&lt;&lt;coupon&gt;&gt;</code>", fragment.text)
    assert "its default is used" in fragment.text and "friend" in fragment.text
    assert "UCS-2" in fragment.text

    long_text = "x" * 200
    fragment = client.post(f"/campaigns/{campaign.id}/preview", data={"body": long_text, "channel": "sms"})
    assert re.search(r'<td class="num">200</td>\s*<td>GSM-7</td><td class="num">2</td>', fragment.text)

    blank = client.post(f"/campaigns/{campaign.id}/preview", data={"body": "Hi <<", "channel": "sms"})
    assert "&#39;&lt;&lt;&#39; without a matching &#39;&gt;&gt;&#39;" in blank.text


def test_bad_input_shows_the_form_again_naming_the_field(client):
    no_file = client.post("/campaigns/new", data={"body": "Hi", "channel": "sms"}, content_type="multipart/form-data")
    assert no_file.status_code == 400 and 'id="file-error"' in no_file.text and "no file was uploaded" in no_file.text

    empty_template = upload(client, body="   ")
    assert empty_template.status_code == 400 and 'id="body-error"' in empty_template.text
    assert "the message template is empty" in empty_template.text

    channel = upload(client, channel="fax")
    assert channel.status_code == 400 and 'id="channel-error"' in channel.text and "unknown channel" in channel.text

    no_phone = upload(client, data=b"nome,cidade\nAna,Porto\n")
    assert no_phone.status_code == 400 and 'id="phone_column-error"' in no_phone.text
    assert "no phone column found" in no_phone.text
    assert '<option value="nome" >nome</option>' in no_phone.text.replace("  ", " "), "the select lists the header"

    chosen = upload(client, data=b"nome,contato\nAna,+15005550006\n", phone_column="contato")
    assert chosen.status_code == 302

    all_invalid = upload(client, data=b"phone,name\nnope,Ana\n,Bruno\n")
    assert all_invalid.status_code == 400 and "no row of the file has a usable phone number" in all_invalid.text
    assert "line 2: invalid phone number" in all_invalid.text and "line 3: empty phone" in all_invalid.text

    assert db.session.scalar(db.select(db.func.count()).select_from(Campaign)) == 1


def test_upload_over_the_size_limit_gets_a_413_page(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    big = b"phone\n" + b"+15005550006\n" * 400
    response = upload(client, data=big)
    assert response.status_code == 413 and "File too large" in response.text
    columns = client.post(
        "/campaigns/columns",
        data={"file": (io.BytesIO(big), "big.csv")},
        content_type="multipart/form-data",
        headers={"HX-Request": "true"},
    )
    assert columns.status_code == 200 and "the file is larger than" in columns.text, "htmx swaps it in"


def test_columns_fragment_lists_the_header_and_the_column_found(client):
    found = client.post(
        "/campaigns/columns",
        data={"file": (io.BytesIO(MESSY), "messy.csv")},
        content_type="multipart/form-data",
        headers={"HX-Request": "true"},
    )
    assert "Found automatically: Telefone" in found.text and '<option value="Pedido"' in found.text
    missing = client.post(
        "/campaigns/columns", data={"file": (io.BytesIO(b"a,b\n1,2\n"), "x.csv")}, content_type="multipart/form-data"
    )
    assert "no phone column found" in missing.text and '<option value="b"' in missing.text


def test_sending_a_draft_twice_queues_it_once(client):
    campaign = draft_of(client)
    assert send(client, campaign).status_code == 302
    again = send(client, campaign)
    assert again.status_code == 302 and again.location.endswith(f"/campaigns/{campaign.id}")
    assert len(messages(campaign.id)) == 3


def test_a_row_whose_message_is_empty_is_rejected_not_skipped(client):
    campaign = draft_of(client, data=b"phone,note\n+15005550006,hello\n+15005550007,\n", body="<<note>>")
    send(client, campaign, body="<<note>>")
    assert [m.body for m in messages(campaign.id)] == ["hello"]
    db.session.refresh(campaign)
    assert campaign.total == 1
    assert campaign.rejected[-1]["line"] == 3 and "empty" in campaign.rejected[-1]["reason"]


def test_send_with_an_empty_template_shows_the_preview_again(client):
    campaign = draft_of(client)
    response = send(client, campaign, body="")
    assert response.status_code == 400 and "the message template is empty" in response.text
    assert messages(campaign.id) == [] and db.session.get(Campaign, campaign.id).status == "draft"


def test_deleting_a_campaign_stops_its_queued_messages(client, fake_twilio):
    campaign = draft_of(client)
    campaign_id = campaign.id
    send(client, campaign)
    client.post(f"/campaigns/{campaign.id}/delete")
    drain()
    assert fake_twilio.calls == []
    assert {m.status for m in messages(campaign_id)} == {"canceled"}


def test_deleting_a_draft_removes_it(client):
    campaign = draft_of(client)
    campaign_id = campaign.id
    assert client.post(f"/campaigns/{campaign_id}/delete").status_code == 302
    db.session.expire_all()
    assert db.session.get(Campaign, campaign_id) is None


def test_detail_log_filters_by_status_and_pages(app, client, fake_twilio):
    rows = "".join(f"+1500555{index:04d},n{index}\n" for index in range(60))
    fake_twilio.fail_for("+15005550007", status=400, code=21211)
    campaign = draft_of(client, data=("phone,name\n" + rows).encode(), body="Hi <<name>>")
    campaign_id = campaign.id
    send(client, campaign, body="Hi <<name>>")
    drain()

    failed = client.get(
        f"/campaigns/{campaign_id}?status=failed", headers={"HX-Request": "true", "HX-Target": "message-log"}
    )
    assert failed.text.lstrip().startswith('<div id="message-log"'), "an htmx request gets the fragment only"
    assert failed.text.count('data-status="failed"') == 1 and "+15005550007" in failed.text
    assert "21211" in failed.text and "not a valid phone number" in failed.text

    first = client.get(f"/campaigns/{campaign_id}")
    assert first.text.count('data-status="sent"') == 50
    older = re.search(r'href="([^"]*before=\d+)"', first.text).group(1).replace("&amp;", "&")
    second = client.get(older)
    assert second.text.count("data-status=") == 10 and "Newer" in second.text


def test_outbox_lists_everything_with_filters_and_dry_run_badges(app, client, fake_twilio):
    app.config["DRY_RUN"] = True
    campaign = draft_of(client)
    campaign_id = campaign.id
    send(client, campaign)
    drain()
    assert fake_twilio.calls == [], "dry run never calls Twilio"

    outbox = client.get("/outbox/")
    assert (
        outbox.text.count('data-status="sent"') == 3 and outbox.text.count(">dry run: recorded, not sent</span>") >= 3
    )
    assert f"campaign #{campaign_id}" in outbox.text

    found = client.get("/outbox/?q=415 555", headers={"HX-Request": "true", "HX-Target": "message-log"})
    assert found.text.count("data-status=") == 1 and "+14155550132" in found.text
    assert client.get("/outbox/?channel=whatsapp").text.count("data-status=") == 0
    assert client.get("/outbox/?status=sent&channel=sms").text.count("data-status=") == 3
