"""Configuration, read in one place from the environment (and `.env`).

Every setting of README.md's *Configuration* table is read here and nowhere
else; the rest of the app reads `current_app.config` (or the dict this
returns, for the worker). Nothing is read at import time.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key(instance_path: Path) -> str:
    """Return SECRET_KEY, generating one under instance/ on first use."""
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def _ports(value: str | None) -> frozenset | None:
    """`80,443,8443` -> those ports; `*` -> any port (an empty set); unset -> None (the default rule)."""
    if value is None or not value.strip():
        return None
    if value.strip() in {"*", "any"}:
        return frozenset()
    return frozenset(int(port) for port in value.split(",") if port.strip())


def _proxy_hops(value: str | None) -> int:
    """TRUST_PROXY: a number of proxies in front, or a flag (`1`/`true` = one)."""
    value = (value or "").strip()
    return int(value) if value.isdigit() else int(_flag(value, default=False))


def load_settings(instance_path: Path, environ=None) -> dict:
    """Build the Flask config dict from the environment (and `.env`)."""
    if environ is None:
        load_dotenv(PROJECT_ROOT / ".env")
        environ = os.environ
    env = environ.get
    database_url = env("DATABASE_URL") or f"sqlite:///{instance_path / 'journeys.sqlite3'}"
    return {
        "SECRET_KEY": env("SECRET_KEY") or _secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": env("REDIS_URL") or "redis://127.0.0.1:6379/0",
        **_twilio_settings(env),
        **_sending_settings(env),
        **_run_settings(env, instance_path),
        **_security_settings(env),
    }


def _twilio_settings(env) -> dict:
    account_sid = env("TWILIO_ACCOUNT_SID") or None
    auth_token = env("TWILIO_AUTH_TOKEN") or None
    return {
        "TWILIO_ACCOUNT_SID": account_sid,
        "TWILIO_AUTH_TOKEN": auth_token,
        "TWILIO_FROM": env("TWILIO_FROM") or None,
        "TWILIO_MESSAGING_SERVICE_SID": env("TWILIO_MESSAGING_SERVICE_SID") or None,
        "TWILIO_WHATSAPP_FROM": env("TWILIO_WHATSAPP_FROM") or None,
        "TWILIO_API_BASE_URL": env("TWILIO_API_BASE_URL") or None,
        "PUBLIC_BASE_URL": (env("PUBLIC_BASE_URL") or "").rstrip("/") or None,
        "DRY_RUN": _flag(env("DRY_RUN"), default=not (account_sid and auth_token)),
        # Seconds per Twilio API call; and the circuit breaker's probe backoff during an outage (app.sending.breaker).
        "TWILIO_TIMEOUT": float(env("TWILIO_TIMEOUT") or 15),
        "TWILIO_PROBE_BACKOFF": env("TWILIO_PROBE_BACKOFF") or "",
    }


def _sending_settings(env) -> dict:
    return {
        "MESSAGE_RATE_LIMIT": float(env("MESSAGE_RATE_LIMIT") or 50),
        # Per sender address (app.sending.senders_pool): a default rate and `ADDRESS=RATE` overrides.
        "SENDER_RATE_LIMIT": float(env("SENDER_RATE_LIMIT") or 0),
        "SENDER_RATE_LIMITS": env("SENDER_RATE_LIMITS") or "",
        # The margin each rate window keeps for calls that reach Twilio later than they took their place.
        "RATE_LIMIT_GUARD_MS": max(0, int(env("RATE_LIMIT_GUARD_MS") or 30)),
        "DEFAULT_REGION": (env("DEFAULT_REGION") or "US").upper(),
        "DEFAULT_TIMEZONE": (env("DEFAULT_TIMEZONE") or "UTC").strip(),
        "SEND_BATCH_SIZE": int(env("SEND_BATCH_SIZE") or 200),
        "SEND_CONCURRENCY": int(env("SEND_CONCURRENCY") or 100),
        "RETRY_BACKOFF": [float(s) for s in (env("RETRY_BACKOFF") or "2,4,8").split(",")],
        # After how long a message left `sending` by a job no heartbeat vouches for is checked with Twilio and,
        # if Twilio does not know it, sent again; unset: the send job timeout + 60 s (recovery.stale_after).
        "MESSAGE_STALE_SECONDS": float(env("MESSAGE_STALE_SECONDS") or 0) or None,
    }


def _run_settings(env, instance_path: Path) -> dict:
    return {
        "API_NODE_ALLOW_PRIVATE": _flag(env("API_NODE_ALLOW_PRIVATE"), default=False),
        # api nodes: ports 80 and 443 unless listed here (`*` for any; any port by default with ALLOW_PRIVATE).
        "API_NODE_ALLOWED_PORTS": _ports(env("API_NODE_ALLOWED_PORTS")),
        # Journey runs (app.runs.runner): how long a job may hold a contact before the sweeper redoes its work.
        "RUNNER_LEASE_SECONDS": float(env("RUNNER_LEASE_SECONDS") or 60),
        # Messages one contact may be sent in one run; the step that would send one more fails it (0 = no cap).
        "MAX_MESSAGES_PER_CONTACT": int(env("MAX_MESSAGES_PER_CONTACT") or 50),
        # Where `runs prune` archives a finished run's results (CSV) before deleting its history.
        "RUN_ARCHIVE_DIR": env("RUN_ARCHIVE_DIR") or str(instance_path / "archive"),
        "MAX_CONTENT_LENGTH": int(env("MAX_UPLOAD_MB") or 20) * 1024 * 1024,
        "CSV_MAX_COLUMNS": int(env("CSV_MAX_COLUMNS") or 200),
    }


def _security_settings(env) -> dict:
    return {
        "WTF_CSRF_TIME_LIMIT": None,
        # Behind a reverse proxy: trust its X-Forwarded-For/-Proto/-Host/-Port (that many proxies deep).
        "TRUST_PROXY": _proxy_hops(env("TRUST_PROXY")),
        "LOG_FORMAT": (env("LOG_FORMAT") or "text").strip().lower(),
        "LOG_LEVEL": (env("LOG_LEVEL") or "INFO").strip().upper(),
        # Wrong passwords allowed per account and per client address (limits' notation).
        "LOGIN_LIMIT_PER_ACCOUNT": env("LOGIN_LIMIT_PER_ACCOUNT") or "10/5 minutes",
        "LOGIN_LIMIT_PER_ADDRESS": env("LOGIN_LIMIT_PER_ADDRESS") or "30/5 minutes",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_DURATION": timedelta(days=min(int(env("REMEMBER_DAYS") or 30), 30)),
        "PERMANENT_SESSION_LIFETIME": timedelta(days=30),
    }
