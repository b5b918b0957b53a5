"""Login, logout, CSRF, API tokens, the CLI that makes them, and rq-dashboard behind the login."""

import pytest

from tests.conftest import USER_EMAIL, USER_PASSWORD, csrf_token_of

PUBLIC_ENDPOINTS = ("auth.", "static", "webhooks.", "api.")


def page_urls(app) -> list[str]:
    """Every GET route without arguments, except login, static files, webhooks and the API."""
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods
        and not rule.arguments - set(rule.defaults or {})
        and not rule.endpoint.startswith(PUBLIC_ENDPOINTS)
    )


def log_in(client, email=USER_EMAIL, password=USER_PASSWORD):
    token = csrf_token_of(client.get("/login").text)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def test_every_page_redirects_to_login_when_logged_out(app, user):
    client = app.test_client()
    urls = page_urls(app)
    assert {"/", "/campaigns/", "/campaigns/new", "/outbox/", "/rq/"} <= set(urls)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.location.startswith("/login"), (url, response.location)
    htmx = client.get("/campaigns/", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/login"


def test_login_goes_back_to_the_page_asked_for(app, user):
    client = app.test_client()
    asked = client.get("/outbox/?status=sent")
    token = csrf_token_of(client.get(asked.location).text)
    response = client.post(asked.location, data={"email": USER_EMAIL, "password": USER_PASSWORD, "csrf_token": token})
    assert response.status_code == 302 and response.location == "/outbox/?status=sent"
    assert client.get("/outbox/").status_code == 200


def test_open_redirects_are_refused(app, user):
    client = app.test_client()
    token = csrf_token_of(client.get("/login").text)
    response = client.post(
        "/login?next=//evil.example/x", data={"email": USER_EMAIL, "password": USER_PASSWORD, "csrf_token": token}
    )
    assert response.location == "/"


def test_wrong_password_is_401(app, user):
    client = app.test_client()
    response = log_in(client, password="wrong password")
    assert response.status_code == 401 and "Wrong email or password" in response.text
    assert client.get("/").status_code == 302
    assert log_in(client, email="nobody@example.com").status_code == 401


def test_a_form_post_without_csrf_token_is_400(app, user):
    client = app.test_client()
    assert log_in(client).status_code == 302
    response = client.post("/campaigns/new", data={"body": "hi", "channel": "sms"})
    assert response.status_code == 400 and "CSRF" in response.text
    assert client.post("/logout").status_code == 400, "logging out needs the token too"
    assert client.post("/login", data={"email": USER_EMAIL, "password": USER_PASSWORD}).status_code == 400


def test_an_htmx_post_without_the_csrf_header_is_400(app, user):
    client = app.test_client()
    assert log_in(client).status_code == 302
    response = client.post("/campaigns/columns", headers={"HX-Request": "true"})
    assert response.status_code == 400
    token = csrf_token_of(client.get("/").text)
    with_header = client.post("/campaigns/columns", headers={"HX-Request": "true", "X-CSRFToken": token})
    assert with_header.status_code == 200


def test_logout_ends_the_session(client):
    assert client.get("/").status_code == 200
    response = client.post("/logout")
    assert response.status_code == 302 and response.location == "/login"
    assert client.get("/").status_code == 302


def test_rq_dashboard_needs_a_login(app, user):
    client = app.test_client()
    assert client.get("/rq/").status_code == 302
    assert client.get("/rq/0/data/queues.json").status_code == 302
    assert log_in(client).status_code == 302
    assert client.get("/rq/").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer jd_not_a_token", "Basic abc", "jd_token"])
def test_api_refuses_missing_or_bad_tokens(app, header):
    headers = {"Authorization": header} if header else {}
    response = app.test_client().get("/api/campaign/history", headers=headers)
    assert response.status_code == 401 and response.is_json and "error" in response.json


def test_api_accepts_a_valid_token(api):
    assert api.get("/api/campaign/history").status_code == 200


def test_cli_creates_users_and_tokens(app):
    runner = app.test_cli_runner()
    created = runner.invoke(args=["users", "create", "Ops@Example.com", "--password", "long enough pw"])
    assert created.exit_code == 0 and "Created user ops@example.com" in created.output
    updated = runner.invoke(args=["users", "create", "ops@example.com", "--password", "another long pw"])
    assert updated.exit_code == 0 and "Updated password" in updated.output
    short = runner.invoke(args=["users", "create", "ops@example.com", "--password", "short"])
    assert short.exit_code != 0 and "at least 8" in short.output
    assert runner.invoke(args=["users", "create", "not-an-email", "--password", "long enough pw"]).exit_code != 0

    client = app.test_client()
    assert log_in(client, "ops@example.com", "another long pw").status_code == 302

    token = runner.invoke(args=["users", "token", "ops@example.com"])
    assert token.exit_code == 0 and token.output.startswith("jd_")
    api = app.test_client()
    response = api.get("/api/campaign/history", headers={"Authorization": f"Bearer {token.output.strip()}"})
    assert response.status_code == 200
    missing = runner.invoke(args=["users", "token", "nobody@example.com"])
    assert missing.exit_code != 0 and "no user" in missing.output
