"""Sessions and cookies, login throttling, equal work for unknown accounts, security headers and /rq's origin check."""

import json
from datetime import UTC, datetime, timedelta

from rq import Queue

from app import create_app
from app.extensions import db
from app.journeys import store as journeys
from app.models import User
from app.queues import get_redis
from tests.conftest import USER_EMAIL, USER_PASSWORD, csrf_token_of
from tests.examples import EXAMPLES_DIR


def log_in(client, email=USER_EMAIL, password=USER_PASSWORD, remember=False):
    token = csrf_token_of(client.get("/login").text)
    data = {"email": email, "password": password, "csrf_token": token}
    if remember:
        data["remember"] = "1"
    return client.post("/login", data=data)


def cookie_headers(response, name: str) -> list[str]:
    return [value for value in response.headers.getlist("Set-Cookie") if value.startswith(f"{name}=")]


def test_cookies_are_httponly_lax_and_remember_me_lasts_at_most_30_days(app, user):
    response = log_in(app.test_client(), remember=True)
    (session_cookie,) = cookie_headers(response, "session")
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    assert "Secure" not in session_cookie, "plain http (tests, localhost) cannot send Secure cookies back"
    (remember_cookie,) = cookie_headers(response, "remember_token")
    assert "HttpOnly" in remember_cookie and "SameSite=Lax" in remember_cookie
    expires = remember_cookie.split("Expires=")[1].split(";")[0]
    lasts = datetime.strptime(expires, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(days=29) < lasts <= timedelta(days=30, minutes=1)


def test_cookies_are_secure_over_https_also_behind_a_trusted_proxy(app, user):
    over_https = app.test_client().get("/login", base_url="https://journeys.example")
    assert all("Secure" in value for value in over_https.headers.getlist("Set-Cookie"))
    assert over_https.headers["Strict-Transport-Security"]

    proxied = create_app({**app.config, "TRUST_PROXY": 1})
    client = proxied.test_client()
    behind = client.get("/login", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "journeys.example"})
    assert behind.headers.getlist("Set-Cookie") and all("Secure" in v for v in behind.headers.getlist("Set-Cookie"))
    direct = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert not any("Secure" in value for value in direct.headers.getlist("Set-Cookie")), "untrusted header ignored"


def test_logout_ends_every_session_of_the_user(app, user):
    laptop, phone = app.test_client(), app.test_client()
    assert log_in(laptop).status_code == 302 and log_in(phone, remember=True).status_code == 302
    assert phone.get("/").status_code == 200
    laptop.environ_base["HTTP_X_CSRFTOKEN"] = csrf_token_of(laptop.get("/").text)
    assert laptop.post("/logout").status_code == 302
    assert phone.get("/").status_code == 302, "the other session ended too"
    phone.delete_cookie("session")
    assert phone.get("/").status_code == 302, "and its remember-me cookie"


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app, user):
    this, other = app.test_client(), app.test_client()
    log_in(this)
    log_in(other, remember=True)
    token = csrf_token_of(this.get("/account").text)
    form = {"csrf_token": token, "current_password": USER_PASSWORD, "confirm_password": "a new long password"}
    wrong = this.post("/account", data={**form, "current_password": "nope", "new_password": "a new long password"})
    assert wrong.status_code == 422 and "current password is wrong" in wrong.text
    assert this.post("/account", data={**form, "new_password": "a new long password"}).status_code == 302
    assert this.get("/").status_code == 200
    assert other.get("/").status_code == 302
    assert log_in(app.test_client(), password="a new long password").status_code == 302


def test_the_sample_contact_is_not_kept_in_the_cookie(app, client):
    journey = journeys.import_document(json.loads((EXAMPLES_DIR / "welcome.json").read_text()))
    response = client.post(
        f"/journeys/{journey.id}/sample", data={"fields": "name = Ana Private\nphone = +15005550006"}
    )
    assert response.status_code == 200 and "Ana Private" in response.text
    session_cookie = client.get_cookie("session").value
    stored = app.session_interface.get_signing_serializer(app).loads(session_cookie)
    assert "Ana Private" not in repr(stored) and "5550006" not in repr(stored)
    assert "Ana Private" in client.get(f"/journeys/{journey.id}/sample").text, "kept server-side"


def test_wrong_passwords_are_throttled_per_account_and_per_address(app, user):
    app.config.update(LOGIN_LIMIT_PER_ACCOUNT="3/5 minutes", LOGIN_LIMIT_PER_ADDRESS="5/5 minutes")
    client = app.test_client()
    assert [log_in(client, password="wrong").status_code for _ in range(3)] == [401] * 3
    blocked = log_in(client)
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.text
    assert int(blocked.headers["Retry-After"]) > 0
    assert log_in(client).status_code == 429, "even the right password waits"
    other = User(email="other@example.com")
    other.set_password("other long password")
    db.session.add(other)
    db.session.commit()
    assert log_in(client, "other@example.com", "other long password").status_code == 302, "another account"
    fresh = app.test_client()
    assert [log_in(fresh, f"x{n}@example.com", "wrong").status_code for n in range(2)] == [401, 401]
    assert log_in(fresh, "other@example.com", "other long password").status_code == 429, "this address is blocked"


def test_unknown_accounts_cost_the_same_password_check(app, user, monkeypatch):
    import app.models.accounts as accounts
    import app.web.auth as auth

    checks = []
    for module in (accounts, auth):
        real = module.check_password_hash
        monkeypatch.setattr(module, "check_password_hash", lambda h, p, real=real: checks.append(h) or real(h, p))
    assert log_in(app.test_client(), "nobody@example.com", "some password").status_code == 401
    assert log_in(app.test_client(), USER_EMAIL, "some password").status_code == 401
    unknown, known = checks
    assert unknown.split("$")[0] == known.split("$")[0], "the dummy hash uses the same method and cost"


def test_security_headers_on_every_response(app, client):
    for url in ("/", "/login", "/static/app.css", "/nowhere"):
        headers = client.get(url).headers
        policy = headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, url
        assert "'unsafe-inline'" not in policy, url
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "same-origin"
        assert headers["X-Frame-Options"] == "DENY"


def test_rq_dashboard_refuses_cross_site_changes(app, client):
    queue = Queue("flows", connection=get_redis())
    queue.enqueue("builtins.print", "kept")
    url = "/rq/queue/flows/queued/empty"
    for headers in (
        {"Origin": "https://evil.example"},
        {},
        {"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"},
    ):
        assert client.post(url, headers=headers).status_code == 403, headers
    assert queue.count == 1, "nothing was emptied"
    assert client.post(url, headers={"Origin": "http://localhost"}).status_code == 200
    assert queue.count == 0
    assert client.get("/rq/requeue/flows", headers={"Referer": "https://evil.example/x"}).status_code == 403


def test_an_editor_cannot_open_rq(app):
    editor = User(email="ed@example.com", role="editor")
    editor.set_password("editor long password")
    db.session.add(editor)
    db.session.commit()
    client = app.test_client()
    assert log_in(client, "ed@example.com", "editor long password").status_code == 302
    assert client.get("/rq/").status_code == 403
