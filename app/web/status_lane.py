"""The status-callback webhook as a plain WSGI handler in front of Flask: the hottest URL, the shortest path.

Twilio posts about two status callbacks per message, so at R messages/s
this URL takes 2R requests/s, more than every page together. Through Flask
each one would pay for a request context, the session, the login and CSRF
hooks, security headers and an access line, none of which a signed,
cookie-less machine request needs. Here it costs what the work costs:
check the `X-Twilio-Signature`, hand the row to the process's
`CallbackWriter` (one INSERT and commit for all concurrent requests), answer
empty TwiML, or 503 when the row could not be stored (Twilio retries).
Refusals and failures are logged; each stored callback only at DEBUG (two
lines per message would drown the log). Every other request passes through
to Flask untouched.
"""

import logging

from werkzeug.wrappers import Request, Response

from app.sending import callbacks
from app.sending.messaging import STATUS_CALLBACK_PATH
from app.web import twilio_requests
from app.web.twilio_requests import STORE_SECONDS

log = logging.getLogger("app.web.webhooks")


class StatusCallbackLane:
    """WSGI middleware: POST `/webhooks/twilio/status` is verified, stored and answered here."""

    def __init__(self, flask_app, wsgi_app):
        self.flask_app, self.wsgi_app = flask_app, wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != STATUS_CALLBACK_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        return self.answer(Request(environ))(environ, start_response)

    def answer(self, request: Request) -> Response:
        refused = twilio_requests.refusal(request, self.flask_app.config)
        if refused is not None:
            return refused
        form = request.form
        sid = form.get("MessageSid", "").strip()
        row = callbacks.callback_row(sid, form.get("MessageStatus", ""), form.get("ErrorCode"))
        if row is not None and not callbacks.CallbackWriter.for_app(self.flask_app, STORE_SECONDS).store(row):
            return twilio_requests.not_stored("status callback", sid)
        log.debug("status callback %s %s stored", sid, row and row["status"])
        return twilio_requests.twiml()
