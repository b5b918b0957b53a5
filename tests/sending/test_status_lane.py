"""The status-callback lane reads the form itself: exactly as werkzeug would, refusing what is too big."""

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from app.web.status_lane import BODY_LIMIT, posted_form
from app.web.twilio_requests import EMPTY_TWIML
from tests.fake_twilio import status_callback_params
from tests.sending.test_webhooks import STATUS, post_signed, stored_callbacks

URLENCODED = "application/x-www-form-urlencoded"


def environ(body: bytes, content_type: str | None = URLENCODED) -> dict:
    return EnvironBuilder(path=STATUS, method="POST", data=body, content_type=content_type).get_environ()


@pytest.mark.parametrize(
    "body",
    [
        b"MessageSid=SM1&MessageStatus=delivered&ErrorCode=",
        b"a=1&a=2&b=&a=1",  # repeats and blanks: the signature covers every value
        b"Body=hello+world%21&Emoji=%F0%9F%98%80&Space=a%20b",
        b"Body=%FF%FEok&x=%zz&y=%",  # percent escapes that are not UTF-8, or not escapes at all
        "Body=café".encode("latin-1"),  # raw bytes that are not UTF-8: werkzeug reads an empty form
        b"&&=x&novalue&=&",
        b"",
        "Body=\u202egnp.exe&Name=\u0130\u0307".encode(),  # bidi override, combining marks
    ],
)
@pytest.mark.parametrize(
    "content_type", [URLENCODED, f"{URLENCODED}; charset=utf-8", "Application/X-WWW-Form-Urlencoded"]
)
def test_the_form_is_read_exactly_as_werkzeug_reads_it(body, content_type):
    ours = posted_form(environ(body, content_type))
    assert list(ours.items(multi=True)) == list(Request(environ(body, content_type)).form.items(multi=True))


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
def test_a_body_of_another_type_reads_as_an_empty_form(content_type):
    body = b"MessageSid=SM1&MessageStatus=delivered"
    assert posted_form(environ(body, content_type)) == {} == Request(environ(body, content_type)).form


def test_a_multipart_body_reads_as_empty_since_twilio_posts_urlencoded_forms():
    builder = EnvironBuilder(path=STATUS, method="POST", data={"MessageSid": "SM1"}, content_type="multipart/form-data")
    assert Request(builder.get_environ()).form.to_dict() == {"MessageSid": "SM1"}  # what werkzeug would have read
    assert posted_form(builder.get_environ()) == {}


def test_a_body_over_the_limit_is_refused_unread_and_logged(app, caplog):
    params = status_callback_params("SMbig", "delivered")
    params["Padding"] = "x" * BODY_LIMIT
    answer = post_signed(app, STATUS, params)
    assert answer.status_code == 413 and str(BODY_LIMIT) in answer.text
    assert stored_callbacks() == []
    assert any("refused a status callback" in record.getMessage() for record in caplog.records)


def test_a_stored_callback_is_answered_with_empty_twiml(app):
    answer = post_signed(app, STATUS, status_callback_params("SMok", "delivered"))
    assert (answer.status_code, answer.content_type, answer.text) == (200, "text/xml; charset=utf-8", EMPTY_TWIML)
    assert answer.content_length == len(EMPTY_TWIML.encode())
    assert stored_callbacks() == [("SMok", "delivered")]
