"""Who may do what, enforced once for every route; and the headers every response carries.

One app-level `before_request` decides for every endpoint, so routes added
later are covered without doing anything: pages need a login session, `/api/`
a bearer token; GET/HEAD/OPTIONS need the `viewer` role, anything else
`editor`; the users pages and `/rq` need `admin`. API tokens act with their
user's role. Cross-site requests to `/rq` (which has no CSRF tokens) are
refused by an Origin check.
"""

import logging
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, g, jsonify, redirect, request, url_for
from flask_login import current_user

from app.extensions import db
from app.models import ApiToken, utcnow
from app.web import htmx

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Reachable without any credentials: the login page and static files; webhooks check Twilio's signature.
PUBLIC_ENDPOINTS = frozenset({"static", "auth.login"})
PUBLIC_BLUEPRINTS = frozenset({"webhooks"})
ADMIN_BLUEPRINTS = frozenset({"users", "rq_dashboard"})
# Changes any logged-in user may make to their own session or account, whatever their role.
SELF_SERVICE_ENDPOINTS = frozenset({"auth.logout", "auth.account"})
# rq-dashboard routes that change state even on GET.
RQ_CHANGING_GET_ENDPOINTS = frozenset({"rq_dashboard.requeue_all"})
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# rq-dashboard's own pages are built on inline scripts and styles and underscore templates (eval); admin only.
RQ_DASHBOARD_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def init_app(app: Flask) -> None:
    app.before_request(enforce_access)
    app.after_request(add_security_headers)
    app.wsgi_app = SecureCookiesOverHttps(app.wsgi_app)
    hops = app.config.get("TRUST_PROXY") or 0
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)


def required_role() -> str:
    """The least role the current request needs."""
    if request.blueprint in ADMIN_BLUEPRINTS:
        return "admin"
    if request.method in READ_METHODS or request.endpoint in SELF_SERVICE_ENDPOINTS:
        return "viewer"
    return "editor"


def enforce_access():
    """Login (or token), role and, for /rq, same-origin: the one gate every request passes."""
    if request.endpoint is None or request.endpoint in PUBLIC_ENDPOINTS or request.blueprint in PUBLIC_BLUEPRINTS:
        return None
    if request.blueprint == "api":
        return _check_api_token()
    if not current_user.is_authenticated:
        if request.htmx:
            return htmx.redirect(url_for("auth.login"), htmx_status=401)
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    role = required_role()
    if not current_user.can(role):
        log.warning(
            "refused: %s %s needs role %s, user %s is %s",
            request.method,
            request.path,
            role,
            current_user.id,
            current_user.role,
        )
        return f"Forbidden: this needs the {role} role; you are {current_user.role}.", 403
    changes = request.method not in READ_METHODS or request.endpoint in RQ_CHANGING_GET_ENDPOINTS
    if request.blueprint == "rq_dashboard" and changes and not _same_origin():
        log.warning(
            "refused: cross-site %s %s (Origin %r)", request.method, request.path, request.headers.get("Origin")
        )
        return "Forbidden: cross-site request refused.", 403
    return None


def _check_api_token():
    """Every `/api/` route needs `Authorization: Bearer <token>` of an active token whose user may do this."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return jsonify(error="missing bearer token: send 'Authorization: Bearer <token>'"), 401
    row = db.session.scalar(db.select(ApiToken).filter_by(token_hash=ApiToken.hash(token.strip())))
    if row is None or row.status != "active" or not row.user.is_active:
        reason = "unknown" if row is None else ("of a disabled user" if row.status == "active" else row.status)
        log.warning(
            "refused API request %s %s: token %s (id %s)", request.method, request.path, reason, row.id if row else "-"
        )
        return jsonify(error="invalid API token" if row is None else f"API token is {reason}"), 401
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_TOUCH_INTERVAL:
        row.last_used_at = now
        db.session.commit()
    g.api_user = row.user
    role = required_role()
    if not row.user.can(role):
        return jsonify(error=f"this needs the {role} role; the token's user is {row.user.role}"), 403
    return None


def _same_origin() -> bool:
    """The request comes from a page of this site (Origin, else Referer, names our own scheme and host)."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
        return False
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return False
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.netloc}" == request.host_url.rstrip("/")


def add_security_headers(response):
    """CSP, no framing, no MIME sniffing, a strict referrer; cookies marked Secure when served over https."""
    policy = RQ_DASHBOARD_POLICY if request.blueprint == "rq_dashboard" else CONTENT_SECURITY_POLICY
    response.headers.setdefault("Content-Security-Policy", policy)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


class SecureCookiesOverHttps:
    """WSGI middleware: every cookie set on a response served over https is marked `Secure`.

    It wraps the app inside ProxyFix, so `wsgi.url_scheme` is the client's scheme when TRUST_PROXY is on;
    done at this level it covers the session cookie (written after `after_request` hooks) and Flask-Login's
    remember cookie alike.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("wsgi.url_scheme") != "https":
            return self.wsgi_app(environ, start_response)

        def secure_start_response(status, headers, exc_info=None):
            headers = [
                (name, f"{value}; Secure")
                if name.lower() == "set-cookie" and "; secure" not in value.lower()
                else (name, value)
                for name, value in headers
            ]
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, secure_start_response)
