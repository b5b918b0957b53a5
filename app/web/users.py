"""Users and API tokens, for admins (the whole blueprint needs `admin`: see app.web.security).

An admin lists, creates, re-roles, disables, deletes and resets the password
of users, and issues, lists and revokes API tokens. The last enabled admin
cannot be demoted, disabled or deleted, so the app always keeps a way in.
"""

import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.models import (
    ROLES,
    AccountRefused,
    ApiToken,
    User,
    check_keeps_an_admin,
    check_new_account,
    first_user_role,
    utcnow,
)

bp = Blueprint("users", __name__, url_prefix="/users")
log = logging.getLogger(__name__)
MAX_TOKEN_DAYS = 3650


def _user(user_id: int) -> User:
    return db.get_or_404(User, user_id)


def _page(status: int = 200, **context):
    users = db.session.scalars(db.select(User).order_by(User.email)).all()
    return render_template("users/index.html", users=users, roles=ROLES, **context), status


@bp.get("/")
def index():
    return _page()


@bp.post("/")
def create():
    form = request.form
    try:
        role = form.get("role") or first_user_role()
        email = check_new_account(form.get("email", ""), form.get("password", ""), role)
    except AccountRefused as error:
        flash(f"Not created: {error}.", "error")
        return _page(422, form=form)
    if db.session.scalar(db.select(User.id).filter_by(email=email)) is not None:
        flash(f"Not created: there is already a user {email}.", "error")
        return _page(409, form=form)
    user = User(email=email, role=role)
    user.set_password(form["password"])
    db.session.add(user)
    db.session.commit()
    log.info("admin %s created user %s (%s) as %s", current_user.id, user.id, email, role)
    flash(f"Created {email} ({role}).", "info")
    return redirect(url_for("users.index"))


def _change(user: User, action, done: str):
    """Apply `action(user)`; commit and say `done`, or show why it was refused."""
    try:
        action(user)
    except AccountRefused as error:
        db.session.rollback()
        flash(f"Not changed: {error}.", "error")
        return _page(409)
    db.session.commit()
    log.info("admin %s: %s (user %s)", current_user.id, done, user.id)
    flash(done, "info")
    return redirect(url_for("users.index"))


@bp.post("/<int:user_id>/role")
def change_role(user_id: int):
    user, role = _user(user_id), request.form.get("role", "")
    if role not in ROLES:
        flash(f"Not changed: role {role!r} must be one of {', '.join(ROLES)}.", "error")
        return _page(422)

    def apply(target: User) -> None:
        check_keeps_an_admin(target, new_role=role)
        target.role = role

    return _change(user, apply, f"{user.email} is now {role}.")


@bp.post("/<int:user_id>/password")
def reset_password(user_id: int):
    user, password = _user(user_id), request.form.get("password", "")

    def apply(target: User) -> None:
        check_new_account(target.email, password, target.role)
        target.set_password(password)

    return _change(user, apply, f"New password set for {user.email}; their sessions were ended.")


@bp.post("/<int:user_id>/disable")
def disable(user_id: int):
    def apply(target: User) -> None:
        check_keeps_an_admin(target, removing=True)
        target.disabled = True
        target.end_sessions()

    user = _user(user_id)
    return _change(user, apply, f"{user.email} is disabled: they cannot log in and their API tokens stop working.")


@bp.post("/<int:user_id>/enable")
def enable(user_id: int):
    def apply(target: User) -> None:
        target.disabled = False

    user = _user(user_id)
    return _change(user, apply, f"{user.email} is enabled again.")


@bp.post("/<int:user_id>/delete")
def delete(user_id: int):
    user = _user(user_id)

    def apply(target: User) -> None:
        if target.id == current_user.id:
            raise AccountRefused("you cannot delete your own account")
        check_keeps_an_admin(target, removing=True)
        db.session.delete(target)

    return _change(user, apply, f"Deleted {user.email} and their API tokens.")


@bp.get("/tokens")
def tokens():
    return _tokens_page()


def _tokens_page(status: int = 200, **context):
    rows = db.session.scalars(db.select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())).all()
    users = db.session.scalars(db.select(User).order_by(User.email)).all()
    return render_template("users/tokens.html", tokens=rows, users=users, **context), status


@bp.post("/tokens")
def issue_token():
    user = db.session.get(User, request.form.get("user_id", type=int) or 0)
    if user is None:
        flash("Not issued: choose a user.", "error")
        return _tokens_page(422)
    days_text = request.form.get("expires_in_days", "").strip()
    try:
        days = float(days_text) if days_text else None
        if days is not None and not 0 < days <= MAX_TOKEN_DAYS:
            raise ValueError
    except ValueError:
        flash(f"Not issued: expires in days must be a number above 0 and at most {MAX_TOKEN_DAYS}, or empty.", "error")
        return _tokens_page(422)
    row, token = ApiToken.issue(user, expires_in_days=days)
    db.session.add(row)
    db.session.commit()
    log.info("admin %s issued API token %s for user %s", current_user.id, row.id, user.id)
    page, status = _tokens_page(201, new_token=token, new_token_row=row)
    return page, status, {"Cache-Control": "no-store"}  # the only time the token is shown


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    row = db.get_or_404(ApiToken, token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.commit()
        log.info("admin %s revoked API token %s of user %s", current_user.id, row.id, row.user_id)
    flash(f"Token {row.id} of {row.user.email} is revoked.", "info")
    return redirect(url_for("users.tokens"))
