"""Twilio error codes in plain language, and which failures are worth retrying.

Codes come from API answers (HTTP 4xx/5xx) and from status callbacks
(`ErrorCode`, the 30xxx/63xxx delivery failures); both are explained here so
operators see why a message failed, not just a number.
"""

ERROR_EXPLANATIONS: dict[int, str] = {
    20003: "Twilio rejected the account SID or auth token; check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN.",
    20404: "Twilio could not find the resource asked for; check the account SID and sender settings.",
    20429: "Twilio is receiving too many requests from this account at once; trying again later should work.",
    21211: "The recipient's phone number is not a valid phone number.",
    21212: "The sender ('From') number is not a valid phone number; check TWILIO_FROM.",
    21408: "This Twilio account is not allowed to send messages to the recipient's country "
    "(enable the region in Twilio's geographic permissions).",
    21602: "The message has no text: a body, a content template or media is required.",
    21603: "No sender was given: set TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID.",
    21604: "No recipient phone number was given.",
    21606: "The sender number cannot send messages to this recipient "
    "(it is not a message-capable Twilio number for that destination).",
    21608: "Trial Twilio accounts can only send to verified phone numbers; verify the number or upgrade the account.",
    21610: "The recipient replied STOP and has unsubscribed; Twilio refuses to message them.",
    21611: "The sender number has too many messages queued at Twilio; try again later.",
    21612: "Twilio cannot reach the recipient's number by text message.",
    21614: "The recipient's number is not a mobile number, so it cannot receive text messages.",
    21617: "The message is longer than Twilio's 1,600-character limit.",
    21620: "The media URL is not valid or not reachable by Twilio.",
    21703: "The Messaging Service has no phone number to send from; add a sender to it in Twilio.",
    30001: "Twilio's queue for the sender overflowed; the message was not sent. Try again later.",
    30002: "The Twilio account is suspended.",
    30003: "The recipient's phone is unreachable (switched off or out of coverage).",
    30004: "The message was blocked: the recipient may have blocked the sender, or the carrier refused it.",
    30005: "The recipient's number is unknown to the carrier or no longer in service.",
    30006: "The recipient's number is a landline or its carrier cannot receive text messages.",
    30007: "The carrier filtered the message as possible spam or for breaking its rules.",
    30008: "The message could not be delivered for an unknown reason reported by the carrier.",
    30032: "The toll-free sender number is not verified, so carriers block its messages.",
    30034: "The sender number is not registered for US A2P 10DLC messaging, so carriers block its messages.",
    63001: "Twilio could not authenticate with the WhatsApp channel; check the WhatsApp sender in Twilio.",
    63003: "WhatsApp could not find the recipient's number.",
    63005: "WhatsApp did not accept the message content.",
    63007: "Twilio has no WhatsApp sender for this 'From' address; check TWILIO_WHATSAPP_FROM.",
    63013: "The WhatsApp sender was blocked for breaking WhatsApp's policies.",
    63015: "The WhatsApp sandbox only sends to numbers that have joined it.",
    63016: "More than 24 hours have passed since the recipient last wrote, so WhatsApp only allows "
    "an approved template (content_sid) now, not free text.",
    63018: "The WhatsApp sender's message rate limit was exceeded; trying again later should work.",
    63024: "The recipient is not a valid WhatsApp user (the number may not have WhatsApp).",
    63032: "WhatsApp will not deliver this message to this user because of a WhatsApp restriction.",
    63049: "WhatsApp chose not to deliver this marketing message to the recipient.",
}

# Codes that mean "not now" rather than "never", whatever the HTTP status.
TRANSIENT_CODES = frozenset({20429, 21611, 30001, 63018})


def _as_code(code) -> int | None:
    if code is None or code == "":
        return None
    try:
        return int(code)
    except (TypeError, ValueError):
        return None


def explain_error(code: int | str | None) -> str:
    """Plain-language text for a Twilio error code (API or status-callback `ErrorCode`)."""
    number = _as_code(code)
    if number is None:
        return "The message failed for an unknown reason."
    return ERROR_EXPLANATIONS.get(
        number, f"Twilio reported error {number}; see https://www.twilio.com/docs/errors/{number}."
    )


def classify_error(http_status: int | None, code: int | str | None) -> tuple[bool, str]:
    """Say whether a failure is transient (worth retrying later) and explain it.

    No HTTP status and no code means Twilio was not reached (network error or
    timeout): transient. HTTP 429 and 5xx are transient; other 4xx answers are
    permanent. A delivery code alone (status callback) is permanent unless it
    is a known "try later" code.
    """
    number = _as_code(code)
    if number is not None and number < 1000:
        number = None  # the SDK echoes the HTTP status as the code when the body is not JSON
    transient = (
        number in TRANSIENT_CODES
        or http_status == 429
        or (http_status is not None and http_status >= 500)
        or (http_status is None and number is None)
    )
    if number is not None:
        return transient, explain_error(number)
    if http_status is None:
        return transient, "Twilio could not be reached (network error or timeout); trying again later should work."
    if http_status == 429:
        return transient, ERROR_EXPLANATIONS[20429]
    if http_status >= 500:
        return transient, f"Twilio had a server error (HTTP {http_status}); trying again later should work."
    if http_status == 401:
        return transient, ERROR_EXPLANATIONS[20003]
    return transient, f"Twilio refused the message (HTTP {http_status})."
