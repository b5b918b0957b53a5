"""The status-callback webhook as a plain WSGI handler in front of Flask: the hottest URL, the shortest path.

Twilio posts about two status callbacks per message, so at R messages/s
this URL takes 2R requests/s, more than every page together. Through Flask
each one would pay for a request context, the session, the login and CSRF
hooks, security headers and an access line, none of which a signed,
cookie-less machine request needs. Here it costs what the work costs:
read the form, check the `X-Twilio-Signature`, hand the row to the
process's `CallbackWriter` (one INSERT and commit for all concurrent
requests), answer empty TwiML, or 503 when the row could not be stored
(Twilio retries). Refusals and failures are logged; each stored callback
only at DEBUG (two lines per message would drown the log). Every other
request passes through to Flask untouched.
"""

import logging
from urllib.parse import parse_qsl

from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.wrappers import Request, Response

from app.sending import callbacks
from app.sending.messaging import STATUS_CALLBACK_PATH
from app.web import twilio_requests
from app.web.twilio_requests import EMPTY_TWIML, STORE_SECONDS

log = logging.getLogger("app.web.webhooks")

# A status callback is well under 2 KB; a bigger body is refused before it is read.
BODY_LIMIT = 64 * 1024
_TWIML_BODY = EMPTY_TWIML.encode()
_TWIML_HEADERS = (("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(_TWIML_BODY))))


class StatusCallbackLane:
    """WSGI middleware: POST `/webhooks/twilio/status` is verified, stored and answered here."""

    def __init__(self, flask_app, wsgi_app):
        self.flask_app, self.wsgi_app = flask_app, wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != STATUS_CALLBACK_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        form = posted_form(environ)
        if form is None:
            log.warning("refused a status callback from %s: over %d bytes", environ.get("REMOTE_ADDR"), BODY_LIMIT)
            return Response(f"a status callback is at most {BODY_LIMIT} bytes", 413)(environ, start_response)
        refused = twilio_requests.refusal(Request(environ), self.flask_app.config, form)
        if refused is not None:
            return refused(environ, start_response)
        sid = form.get("MessageSid", "").strip()
        row = callbacks.callback_row(sid, form.get("MessageStatus", ""), form.get("ErrorCode"))
        if row is not None and not callbacks.CallbackWriter.for_app(self.flask_app, STORE_SECONDS).store(row):
            return twilio_requests.not_stored("status callback", sid)(environ, start_response)
        log.debug("status callback %s %s stored", sid, row and row["status"])
        start_response("200 OK", list(_TWIML_HEADERS))
        return [_TWIML_BODY]


def posted_form(environ) -> ImmutableMultiDict | None:
    """The posted form exactly as werkzeug's `request.form` reads it; None when the body is over `BODY_LIMIT`.

    The same parse as werkzeug's for an urlencoded body (an empty form for
    any other type, or a body that is not UTF-8), without the request,
    stream and parser objects around it: a third of this URL's own time.
    A body without a Content-Length reads as empty (its signature then
    fails): Twilio always sends one.
    """
    try:
        length = max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        length = 0
    if length > BODY_LIMIT:
        return None
    mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    if mimetype != "application/x-www-form-urlencoded" or not length:
        return ImmutableMultiDict()
    body = environ["wsgi.input"].read(length)
    try:
        return ImmutableMultiDict(parse_qsl(body.decode(), keep_blank_values=True, errors="werkzeug.url_quote"))
    except ValueError:
        return ImmutableMultiDict()
