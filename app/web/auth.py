"""Login, logout and one's own password; accounts are made by an admin (Users page) or `flask users create`.

A session (and a remember-me cookie) names the user's `session_token`;
logging out or changing the password replaces it, which ends every session
of that user everywhere. Wrong passwords are throttled per account and per
client address, and an unknown account costs the same password hashing as a
known one, so timing does not tell which accounts exist.
"""

import hmac
import logging
import math
import secrets
import time
from functools import cache
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db, login_manager
from app.models import User

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)
MIN_PASSWORD_LENGTH = 8


@login_manager.user_loader
def load_user(session_id: str):
    """`<user id>:<session token>`: a replaced token (logout, new password) or a disabled user loads nobody."""
    user_id, _, token = session_id.partition(":")
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.is_active or not hmac.compare_digest(user.session_token, token):
        return None
    return user


@cache
def _dummy_hash() -> str:
    """A hash made the way real ones are, checked for unknown accounts so they take as long as known ones."""
    return generate_password_hash(secrets.token_hex(16))


def _safe_next(target: str | None) -> str:
    """Only follow `next` to a path on this site (no open redirect)."""
    if target and not urlsplit(target).netloc and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("home.index")


def _limiter() -> MovingWindowRateLimiter:
    limiter = current_app.extensions.get("login_limiter")
    if limiter is None:
        limiter = MovingWindowRateLimiter(storage_from_string(current_app.config["REDIS_URL"]))
        current_app.extensions["login_limiter"] = limiter
    return limiter


def _login_limits(email: str) -> list[tuple]:
    config = current_app.config
    return [
        (parse(config["LOGIN_LIMIT_PER_ACCOUNT"]), "login-account", email),
        (parse(config["LOGIN_LIMIT_PER_ADDRESS"]), "login-address", request.remote_addr or "-"),
    ]


def _seconds_blocked(email: str) -> int:
    """Seconds until another attempt is allowed (0: allowed now). Without Redis, logins are not throttled."""
    try:
        limiter = _limiter()
        for limit, *keys in _login_limits(email):
            if not limiter.test(limit, *keys):
                reset_at = limiter.get_window_stats(limit, *keys).reset_time
                return max(1, math.ceil(reset_at - time.time()))
    except RedisError:
        log.warning("login throttling unavailable: Redis is unreachable")
    return 0


def _count_failure(email: str) -> None:
    try:
        limiter = _limiter()
        for limit, *keys in _login_limits(email):
            limiter.hit(limit, *keys)
    except RedisError:
        log.warning("login throttling unavailable: Redis is unreachable")


def _authenticate(email: str, password: str) -> User | None:
    """The user when the password is right and the account enabled; the same hashing work either way."""
    user = db.session.scalar(db.select(User).filter_by(email=email))
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return None
    return user if user.check_password(password) and user.is_active else None


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method != "POST":
        return render_template("login.html")
    email = request.form.get("email", "").strip().lower()
    wait = _seconds_blocked(email)
    if wait:
        log.warning("login refused for %r from %s: too many wrong passwords", email, request.remote_addr)
        flash(f"Too many failed attempts. Try again in {math.ceil(wait / 60)} minute(s).", "error")
        return render_template("login.html", email=email), 429, {"Retry-After": str(wait)}
    user = _authenticate(email, request.form.get("password", ""))
    if user is None:
        _count_failure(email)
        log.warning("failed login for %r from %s", email, request.remote_addr)
        flash("Wrong email or password.", "error")
        return render_template("login.html", email=email), 401
    login_user(user, remember=bool(request.form.get("remember")))
    log.info("user %s logged in from %s", user.id, request.remote_addr)
    return redirect(_safe_next(request.args.get("next")))


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out here and everywhere else: the user's session token is replaced."""
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    flash("You are logged out (on every device).", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """Change one's own password; other sessions of the account end, this one goes on."""
    if request.method != "POST":
        return render_template("users/account.html")
    form = request.form
    if not current_user.check_password(form.get("current_password", "")):
        flash("The current password is wrong.", "error")
        return render_template("users/account.html"), 422
    new_password = form.get("new_password", "")
    if len(new_password) < MIN_PASSWORD_LENGTH:
        flash(f"The new password must be at least {MIN_PASSWORD_LENGTH} characters.", "error")
        return render_template("users/account.html"), 422
    if new_password != form.get("confirm_password"):
        flash("The two new passwords differ.", "error")
        return render_template("users/account.html"), 422
    user = current_user._get_current_object()
    user.set_password(new_password)
    db.session.commit()
    login_user(user)
    log.info("user %s changed their password; their other sessions ended", user.id)
    flash("Password changed. Your other sessions have been logged out.", "info")
    return redirect(url_for("auth.account"))
