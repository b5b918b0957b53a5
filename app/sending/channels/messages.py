"""Plain values passed in and out of the senders, so callers need no Twilio types."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit


@dataclass(frozen=True)
class OutboundMessage:
    """One message to send. `key` is the caller's id for it, echoed in its `SendResult`.

    `content_variables` is a JSON string (a dict is accepted and encoded);
    `media_url` is one URL (or a list of them).
    """

    key: str
    to: str
    channel: str
    body: str | None = None
    content_sid: str | None = None
    content_variables: str | dict | None = None
    media_url: str | list[str] | None = None
    status_callback: str | None = None
    from_address: str | None = None


@dataclass(frozen=True)
class SendResult:
    """What happened to one `OutboundMessage`.

    `transient` is True when trying again later may succeed (rate limit, Twilio
    outage, network trouble); False when retrying cannot help.
    """

    key: str
    ok: bool
    sid: str | None = None
    status: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    transient: bool = False
    http_status: int | None = None
    # The request may have reached Twilio (timeout, reset after sending): look it up before any resend.
    ambiguous: bool = False


@dataclass(frozen=True)
class SentLookup:
    """Did Twilio accept this message? Asked about a send whose answer was lost (the sender died).

    `key` is the caller's id, echoed in its `LookupResult`. A message matches
    when it went to `to` on `channel` from our sender, was created at Twilio
    between `since` and `until` (timezone-aware), and has this `body`
    (messages sent with a `content_sid` are matched without their body, which
    Twilio renders from the template).
    """

    key: str
    to: str
    channel: str
    since: datetime
    until: datetime
    body: str | None = None
    content_sid: str | None = None
    from_address: str | None = None


@dataclass(frozen=True)
class FoundMessage:
    """A message Twilio accepted that matches a `SentLookup`: its sid, when Twilio created it, its status now."""

    sid: str
    created_at: datetime
    status: str
    error_code: int | None = None


@dataclass(frozen=True)
class LookupResult:
    """The answer to one `SentLookup`.

    `ok` False means Twilio could not be asked (network error, 5xx, ...): then
    nothing is known and `error_message` says why. Otherwise `found` lists the
    matching messages, oldest first (none: Twilio never accepted it).
    """

    key: str
    ok: bool
    found: tuple[FoundMessage, ...] = ()
    error_message: str | None = None


_TRUE_WORDS = {"1", "true", "yes", "on"}


def _as_bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_WORDS
    return bool(value)


@dataclass(frozen=True)
class SenderSettings:
    """Everything a sender needs; the auth token never appears in its repr.

    `concurrency` is the number of Twilio calls in flight at once (and the size
    of the connection pool); `timeout` is seconds per call; `dry_run_latency`
    makes the dry-run sender pretend each call takes that long (benchmarks).
    """

    account_sid: str | None
    auth_token: str | None = field(repr=False)
    sms_from: str | None = None
    messaging_service_sid: str | None = None
    whatsapp_from: str | None = None
    api_base_url: str | None = None
    dry_run: bool = False
    concurrency: int = 100
    timeout: float = 15.0
    dry_run_latency: float = 0.0

    def __post_init__(self):
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError(f"concurrency must be a whole number of at least 1, got {self.concurrency!r}")
        if not self.timeout or self.timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.dry_run_latency < 0:
            raise ValueError(f"dry_run_latency must not be negative, got {self.dry_run_latency!r}")
        if self.api_base_url:
            parts = urlsplit(self.api_base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    f"api_base_url (TWILIO_API_BASE_URL) must look like https://host[:port], got {self.api_base_url!r}"
                )

    @classmethod
    def from_config(cls, config: Mapping) -> "SenderSettings":
        """Build settings from the app's config keys (`TWILIO_*`, `DRY_RUN`, `SEND_CONCURRENCY`).

        Works with Flask's `app.config`, the worker's settings dict or `os.environ`.
        """
        account_sid = config.get("TWILIO_ACCOUNT_SID") or None
        auth_token = config.get("TWILIO_AUTH_TOKEN") or None
        dry_run = config.get("DRY_RUN")
        return cls(
            account_sid=account_sid,
            auth_token=auth_token,
            sms_from=config.get("TWILIO_FROM") or None,
            messaging_service_sid=config.get("TWILIO_MESSAGING_SERVICE_SID") or None,
            whatsapp_from=config.get("TWILIO_WHATSAPP_FROM") or None,
            api_base_url=config.get("TWILIO_API_BASE_URL") or None,
            dry_run=_as_bool(dry_run) if dry_run not in (None, "") else not (account_sid and auth_token),
            concurrency=int(config.get("SEND_CONCURRENCY") or 100),
            timeout=float(config.get("TWILIO_TIMEOUT") or 15.0),
        )
