"""What every Twilio webhook shares: its signature checked against our public URL, and its answers.

Used by the inbound-message blueprint (a Flask request) and by the status-callback lane in front of
Flask (a plain werkzeug request): one check, one set of answers, whichever path a webhook takes.
With no `TWILIO_AUTH_TOKEN` nothing can be verified, so every webhook is refused (403) and logged,
dry run or not: an unsigned endpoint would let anyone opt contacts out or fake deliveries.
"""

import hmac
import logging

from twilio.request_validator import RequestValidator
from werkzeug.wrappers import Request, Response

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# How long storing what arrived may wait for the database: well inside Twilio's 15 s, and our 5 s promise.
STORE_SECONDS = 3.0

log = logging.getLogger("app.web.webhooks")


def refusal(request: Request, config, form=None) -> Response | None:
    """403 unless Twilio signed the request for our public URL (and we hold the token to check it).

    `form`: the request's form when the caller has read it already (else `request.form`).
    """
    form = request.form if form is None else form
    token = config.get("TWILIO_AUTH_TOKEN")
    if not token:
        log.warning("refused Twilio webhook %s: TWILIO_AUTH_TOKEN is not set", request.path)
        return Response("webhook signatures cannot be checked: TWILIO_AUTH_TOKEN is not set", 403)
    url = public_url(request, config)
    signature = request.headers.get("X-Twilio-Signature", "")
    if signature and signed_by_twilio(RequestValidator(token), url, form, signature):
        return None
    log.warning(
        "refused Twilio webhook %s from %s: bad or missing X-Twilio-Signature (checked against %s)",
        request.path,
        request.remote_addr,
        url,
        extra={"message_sid": form.get("MessageSid")},
    )
    return Response("invalid X-Twilio-Signature", 403)


def signed_by_twilio(validator: RequestValidator, url: str, form, signature: str) -> bool:
    """The library's check, cheapest case first: the URL exactly as we publish it, then the library's own.

    `validate` always signs the URL twice (with and without the port, since
    Twilio is not consistent); our URL is one of the two, so a match on it
    is one the library accepts, and anything else gets the library's full
    check. Half the signing on the busiest URL (status callbacks).
    """
    expected = validator.compute_signature(url, form)
    if hmac.compare_digest(expected.encode(), signature.encode()):
        return True
    return validator.validate(url, form, signature)


def public_url(request: Request, config) -> str:
    """The URL Twilio signed: ours as the outside world sees it (`PUBLIC_BASE_URL` + path, else the request's)."""
    base = config.get("PUBLIC_BASE_URL")
    if not base:
        return request.url
    query = request.query_string.decode()
    return base.rstrip("/") + request.path + (f"?{query}" if query else "")


def twiml() -> Response:
    """Empty TwiML: received, nothing to say back."""
    return Response(EMPTY_TWIML, 200, mimetype="text/xml")


def not_stored(what: str, sid: str) -> Response:
    """The row could not be stored (database busy or down): 503, so Twilio tries again."""
    log.error("could not store Twilio %s %s; answered 503 so that Twilio retries", what, sid)
    return Response("could not store the webhook now; try again", 503, {"Retry-After": "5"})
