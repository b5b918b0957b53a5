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

from twilio.request_validator import RequestValidator
from werkzeug.wrappers import Request, Response

from app.sending import callbacks
from app.sending.messaging import STATUS_CALLBACK_PATH
from app.web.webhooks import EMPTY_TWIML, STORE_SECONDS

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
        refusal = self.refusal(request)
        if refusal is not None:
            return refusal
        form = request.form
        sid = form.get("MessageSid", "").strip()
        row = callbacks.callback_row(sid, form.get("MessageStatus", ""), form.get("ErrorCode"))
        if row is not None and not callbacks.CallbackWriter.for_app(self.flask_app, STORE_SECONDS).store(row):
            log.error("could not store Twilio status callback %s; answered 503 so that Twilio retries", sid)
            return Response("could not store the webhook now; try again", 503, {"Retry-After": "5"})
        log.debug("status callback %s %s stored", sid, row and row["status"])
        return Response(EMPTY_TWIML, 200, mimetype="text/xml")

    def refusal(self, request: Request) -> Response | None:
        """403 unless Twilio signed the request for our public URL (and we hold the token to check it)."""
        token = self.flask_app.config.get("TWILIO_AUTH_TOKEN")
        if not token:
            log.warning("refused Twilio webhook %s: TWILIO_AUTH_TOKEN is not set", request.path)
            return Response("webhook signatures cannot be checked: TWILIO_AUTH_TOKEN is not set", 403)
        url = self.public_url(request)
        signature = request.headers.get("X-Twilio-Signature", "")
        if signature and RequestValidator(token).validate(url, request.form, signature):
            return None
        log.warning(
            "refused Twilio webhook %s from %s: bad or missing X-Twilio-Signature (checked against %s)",
            request.path,
            request.remote_addr,
            url,
            extra={"message_sid": request.form.get("MessageSid")},
        )
        return Response("invalid X-Twilio-Signature", 403)

    def public_url(self, request: Request) -> str:
        """The URL Twilio signed: ours as the outside world sees it."""
        base = self.flask_app.config.get("PUBLIC_BASE_URL")
        if not base:
            return request.url
        query = request.query_string.decode()
        return base.rstrip("/") + request.path + (f"?{query}" if query else "")
