"""One logging setup for the web process and the workers (`create_app()` calls it).

`LOG_FORMAT=text` (default) writes one readable line per record; `json` one
JSON object per line for a log collector. Every line written while serving a
request carries its request id (taken from `X-Request-ID` when the client or
proxy sends a sane one, else made here, and sent back in the response), every
line written inside an RQ job its job id, and ids passed with `extra=`
(`campaign_id`, `run_id`, `message_id`, `contact_id`, ...) are kept as
fields. Secrets are scrubbed from every line: the configured Twilio auth token
and secret key, API tokens (`jd_…`), bearer credentials and passwords.
"""

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_SECRET_PATTERNS = (
    re.compile(r"jd_[A-Za-z0-9_-]{16,}"),
    re.compile(r"(?i)(bearer\s+)\S+"),
    re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{8,}"),
    re.compile(r"(?i)((?:password|auth_token|secret_key|token)\s*[=:]\s*)[^\s,&;]+"),
)
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "job_id"}
_HANDLER_NAME = "journeys"
# Libraries that log every HTTP request at INFO (the Twilio SDK: each message sent): only their warnings,
# unless LOG_LEVEL=DEBUG.
_CHATTY_LOGGERS = ("twilio.http_client", "twilio.async_http_client")


class _ContextFilter(logging.Filter):
    """Adds the request id and RQ job id of the code that logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id") if has_request_context() else None
        record.job_id = _current_job_id()
        return True


def _current_job_id() -> str | None:
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:  # outside a worker there is no job
        return None
    return job.id if job is not None else None


class _Scrubber:
    def __init__(self, secrets: list[str]):
        self.secrets = [secret for secret in secrets if secret and len(secret) >= 6]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda match: (match.group(1) if match.groups() else "") + "[redacted]", text)
        return text


class TextFormatter(logging.Formatter):
    def __init__(self, scrub: _Scrubber):
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        ids = [f"request={record.request_id}"] if getattr(record, "request_id", None) else []
        ids += [f"job={record.job_id}"] if getattr(record, "job_id", None) else []
        ids += [f"{key}={value}" for key, value in _extras(record).items()]
        record.context = f" [{' '.join(ids)}]" if ids else ""
        return self.scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, scrub: _Scrubber):
        super().__init__()
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "job_id"):
            if getattr(record, key, None):
                entry[key] = getattr(record, key)
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.scrub(json.dumps(entry, default=str, ensure_ascii=False))


def _extras(record: logging.LogRecord) -> dict:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES and key != "context"}


def configure_logging(app: Flask) -> None:
    """Install the log handler for the app's settings and give every request an id."""
    install_handler(app.config)
    app.logger.handlers.clear()  # Flask's default handler would write each record a second time
    app.logger.propagate = True
    app.before_request(_assign_request_id)
    app.after_request(_log_request)


def install_handler(config, stream=None) -> logging.Handler:
    """Send every logger's records to `stream` (stderr) in the configured format; replaces an earlier one."""
    scrub = _Scrubber([config.get("TWILIO_AUTH_TOKEN"), config.get("SECRET_KEY")])
    formatter = JsonFormatter(scrub) if config.get("LOG_FORMAT") == "json" else TextFormatter(scrub)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in [old for old in root.handlers if old.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    level = config.get("LOG_LEVEL") or "INFO"
    root.setLevel(level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel("DEBUG" if level == "DEBUG" else "WARNING")
    return handler


def _assign_request_id() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if _SANE_REQUEST_ID.match(given) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def _log_request(response):
    """One access line per request (with its id); the id goes back in X-Request-ID."""
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    if request.endpoint != "static":
        elapsed = (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000
        logging.getLogger("app.access").info(
            "%s %s %s %.1f ms", request.method, request.path, response.status_code, elapsed
        )
    return response
