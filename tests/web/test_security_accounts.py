"""Users page and CLI (roles, last admin, disable, reset), API tokens (expiry, revoke, last use) on page and CLI."""

from datetime import timedelta

from app.extensions import db
from app.models import ApiToken, User, utcnow
from tests.conftest import USER_EMAIL, csrf_token_of


def _form(client, url: str, **data):
    token = csrf_token_of(client.get("/users/").text)
    return client.post(url, data={"csrf_token": token, **data})


def _user(email: str) -> User:
    db.session.expire_all()
    return db.session.scalar(db.select(User).filter_by(email=email))


def test_cli_roles_follow_the_contract(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["users", "create", "first@example.com", "--password", "long enough pw"])
    assert first.exit_code == 0 and "(admin)" in first.output
    second = runner.invoke(args=["users", "create", "second@example.com", "--password", "long enough pw"])
    assert second.exit_code == 0 and "(editor)" in second.output
    viewer = runner.invoke(
        args=["users", "create", "v@example.com", "--password", "long enough pw", "--role", "viewer"]
    )
    assert viewer.exit_code == 0 and _user("v@example.com").role == "viewer"
    bad = runner.invoke(args=["users", "create", "b@example.com", "--password", "long enough pw", "--role", "boss"])
    assert bad.exit_code != 0 and "boss" in bad.output
    last_admin = runner.invoke(
        args=["users", "create", "first@example.com", "--password", "long enough pw", "--role", "viewer"]
    )
    assert last_admin.exit_code != 0 and "last admin" in last_admin.output
    assert _user("first@example.com").role == "admin"


def test_cli_tokens_expire_list_and_revoke(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "create", "ops@example.com", "--password", "long enough pw"])
    token = runner.invoke(args=["users", "token", "ops@example.com", "--expires-in", "7"]).output.strip()
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/campaign/history", headers=headers).status_code == 200
    listing = runner.invoke(args=["users", "tokens", "ops@example.com"]).output.splitlines()
    assert listing[0].split("\t") == ["id", "status", "created", "last_used", "expires"]
    token_id, status, *_ = listing[1].split("\t")
    assert status == "active" and not listing[1].endswith("\t-")
    assert runner.invoke(args=["users", "revoke", token_id]).exit_code == 0
    refused = api.get("/api/campaign/history", headers=headers)
    assert refused.status_code == 401 and refused.json["error"] == "API token is revoked"
    assert "revoked" in runner.invoke(args=["users", "tokens", "ops@example.com"]).output
    assert runner.invoke(args=["users", "revoke", "999"]).exit_code != 0
    assert runner.invoke(args=["users", "token", "ops@example.com", "--expires-in", "0"]).exit_code != 0


def test_expired_tokens_and_tokens_of_disabled_users_are_refused(app, user):
    row, token = ApiToken.issue(user, expires_in_days=1)
    db.session.add(row)
    db.session.commit()
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    assert api.get("/api/campaign/history").status_code == 200
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert api.get("/api/campaign/history").json["error"] == "API token is expired"
    row.expires_at = None
    user.disabled = True
    db.session.commit()
    assert api.get("/api/campaign/history").status_code == 401


def test_last_used_at_is_written_at_most_once_a_minute(app, api):
    assert api.get("/api/campaign/history").status_code == 200
    row = db.session.scalar(db.select(ApiToken))
    first = row.last_used_at
    assert first is not None
    assert api.get("/api/campaign/history").status_code == 200
    db.session.refresh(row)
    assert row.last_used_at == first, "a second use within the minute writes nothing"
    row.last_used_at = first - timedelta(minutes=2)
    db.session.commit()
    api.get("/api/campaign/history")
    db.session.refresh(row)
    assert row.last_used_at > first - timedelta(minutes=2)


def test_admin_manages_users_on_the_page(app, client):
    page = client.get("/users/")
    assert page.status_code == 200 and USER_EMAIL in page.text
    created = _form(client, "/users/", email="New@Example.com", password="long enough pw", role="viewer")
    assert created.status_code == 302
    new = _user("new@example.com")
    assert new.role == "viewer"
    assert (
        _form(client, "/users/", email="new@example.com", password="long enough pw", role="viewer").status_code == 409
    )
    assert _form(client, "/users/", email="x@example.com", password="short", role="viewer").status_code == 422
    assert _form(client, f"/users/{new.id}/role", role="editor").status_code == 302
    assert _user("new@example.com").role == "editor"
    assert _form(client, f"/users/{new.id}/password", password="another long pw").status_code == 302
    assert _form(client, f"/users/{new.id}/disable").status_code == 302 and _user("new@example.com").disabled
    assert _form(client, f"/users/{new.id}/enable").status_code == 302 and not _user("new@example.com").disabled
    assert _form(client, f"/users/{new.id}/delete").status_code == 302 and _user("new@example.com") is None


def test_the_last_admin_cannot_be_demoted_disabled_or_deleted(app, client, user):
    for url, data in ((f"/users/{user.id}/role", {"role": "editor"}), (f"/users/{user.id}/disable", {})):
        response = _form(client, url, **data)
        assert response.status_code == 409 and "last admin" in response.text, url
    assert "your own account" in _form(client, f"/users/{user.id}/delete").text
    assert _user(USER_EMAIL).role == "admin" and not _user(USER_EMAIL).disabled
    other = User(email="second@example.com", role="admin")
    other.set_password("long enough pw")
    db.session.add(other)
    db.session.commit()
    assert _form(client, f"/users/{other.id}/role", role="viewer").status_code == 302


def test_a_disabled_or_reset_user_is_logged_out(app, client):
    from tests.web.test_security_roles import logged_in, make_user

    victim = make_user("v@example.com", "editor")
    session = logged_in(app, "v@example.com")
    assert session.get("/").status_code == 200
    _form(client, f"/users/{victim.id}/password", password="brand new password")
    assert session.get("/").status_code == 302
    session = logged_in(app, "v@example.com", password="brand new password")
    _form(client, f"/users/{victim.id}/disable")
    assert session.get("/").status_code == 302


def test_tokens_page_issues_lists_and_revokes(app, client, user):
    issued = _form(client, "/users/tokens", user_id=str(user.id), expires_in_days="30")
    assert issued.status_code == 201
    token = issued.text.split("<code>")[1].split("</code>")[0]
    assert token.startswith("jd_")
    assert (
        app.test_client().get("/api/campaign/history", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    row = db.session.scalar(db.select(ApiToken))
    assert row.expires_at is not None
    listing = client.get("/users/tokens").text
    assert token not in listing and "active" in listing
    assert _form(client, f"/users/tokens/{row.id}/revoke").status_code == 302
    assert "revoked" in client.get("/users/tokens").text
    assert _form(client, "/users/tokens", user_id=str(user.id), expires_in_days="-3").status_code == 422


def test_a_viewer_may_change_their_own_password_and_log_out(app):
    from tests.web.test_security_roles import PASSWORD, logged_in, make_user

    make_user("viewer@example.com", "viewer")
    client = logged_in(app, "viewer@example.com")
    token = csrf_token_of(client.get("/account").text)
    changed = client.post(
        "/account",
        data={
            "csrf_token": token,
            "current_password": PASSWORD,
            "new_password": "viewer new password",
            "confirm_password": "viewer new password",
        },
    )
    assert changed.status_code == 302 and client.get("/").status_code == 200
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302
