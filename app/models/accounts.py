"""Operators, their roles and their API tokens."""

import hashlib
import secrets
from datetime import timedelta

from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models.vocabulary import ROLES, utcnow


def _new_session_token() -> str:
    return secrets.token_hex(16)


class User(UserMixin, db.Model):
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(254), unique=True, nullable=False)
    password_hash = db.Column(db.String(255), nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    role = db.Column(db.String(16), nullable=False, default="editor", server_default="editor")
    # Part of every session and remember-me cookie; replacing it ends all of the user's sessions.
    session_token = db.Column(db.String(64), nullable=False, default=_new_session_token, server_default="")
    disabled = db.Column(db.Boolean, nullable=False, default=False, server_default="0")

    def set_password(self, password: str) -> None:
        """Set the password; every session of the user ends (they log in again with the new one)."""
        self.password_hash = generate_password_hash(password)
        self.end_sessions()

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def end_sessions(self) -> None:
        self.session_token = _new_session_token()

    def get_id(self) -> str:
        """Flask-Login's id: the row id with the session token, so a new token voids older cookies."""
        return f"{self.id}:{self.session_token}"

    @property
    def is_active(self) -> bool:
        return not self.disabled

    def can(self, role: str) -> bool:
        """True when the user's role is `role` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role) if self.role in ROLES else False


class ApiToken(db.Model):
    """A bearer token for `/api/`; only its SHA-256 is stored. It acts with its user's role."""

    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    token_hash = db.Column(db.String(64), unique=True, nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    last_used_at = db.Column(db.DateTime)
    expires_at = db.Column(db.DateTime)
    revoked_at = db.Column(db.DateTime)
    user = db.relationship(User)

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, user: User, expires_in_days: float | None = None) -> tuple["ApiToken", str]:
        """Create a token row for `user`; return it with the plain token (shown once)."""
        token = "jd_" + secrets.token_urlsafe(32)
        expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
        return cls(user=user, token_hash=cls.hash(token), expires_at=expires_at), token

    @property
    def status(self) -> str:
        """`active`, `revoked` or `expired`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


class AccountRefused(ValueError):
    """A change to accounts that would leave the app without a way in, or with bad input."""


def first_user_role() -> str:
    """The role a new account gets by default: `admin` for the very first user, else `editor`."""
    return "editor" if db.session.scalar(db.select(User.id).limit(1)) is not None else "admin"


def check_keeps_an_admin(user: User, new_role: str | None = None, removing: bool = False) -> None:
    """Refuse demoting, disabling or deleting the last enabled admin."""
    if user.role != "admin" or user.disabled or (new_role == "admin" and not removing):
        return
    admins = db.session.scalar(
        db.select(db.func.count()).select_from(User).where(User.role == "admin", User.disabled.is_(False))
    )
    if admins <= 1:
        raise AccountRefused(f"{user.email} is the last admin: make another user admin first")


def check_new_account(email: str, password: str, role: str) -> str:
    """The normalised email, or AccountRefused naming what is wrong."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise AccountRefused(f"email {email!r} must be an email address")
    if len(password) < 8:
        raise AccountRefused("password must be at least 8 characters")
    if role not in ROLES:
        raise AccountRefused(f"role {role!r} must be one of {', '.join(ROLES)}")
    return email
