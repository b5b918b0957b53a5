"""Roles, checked for every route by walking the URL map: anonymous, viewer, editor and admin, pages and API."""

import pytest

from app.extensions import db
from app.models import ApiToken, User
from tests.conftest import csrf_token_of

PASSWORD = "a long enough password"
PUBLIC = ("static", "auth.login")
SELF_SERVICE = ("auth.logout", "auth.account")
ADMIN_BLUEPRINTS = ("users.", "rq_dashboard.")


def _url(app, rule) -> str:
    """The rule's URL with each argument filled in: 1 for numbers, `x` for text."""
    values = {
        name: 1 if type(converter).__name__ == "IntegerConverter" else "x"
        for name, converter in rule._converters.items()
    }
    return app.url_map.bind("localhost").build(rule.endpoint, values, force_external=False)


def routes(app, public=False):
    """(endpoint, method, url) for every rule and method (HEAD and OPTIONS aside)."""
    found = []
    for rule in app.url_map.iter_rules():
        if (rule.endpoint in PUBLIC or rule.endpoint.startswith("webhooks.")) != public:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, _url(app, rule)))
    return found


def make_user(email: str, role: str) -> User:
    user = User(email=email, role=role)
    user.set_password(PASSWORD)
    db.session.add(user)
    db.session.commit()
    return user


def logged_in(app, email: str, password: str = PASSWORD):
    client = app.test_client()
    token = csrf_token_of(client.get("/login").text)
    assert client.post("/login", data={"email": email, "password": password, "csrf_token": token}).status_code == 302
    return client


def token_client(app, user: User):
    row, token = ApiToken.issue(user)
    db.session.add(row)
    db.session.commit()
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def test_the_walk_covers_pages_api_admin_areas_and_webhooks(app):
    endpoints = {endpoint for endpoint, _, _ in routes(app)}
    assert {"home.index", "users.index", "users.issue_token", "rq_dashboard.queues_overview"} <= endpoints
    assert any(endpoint.startswith("api.") for endpoint in endpoints)
    assert {endpoint for endpoint, _, _ in routes(app, public=True)} >= {"auth.login", "static"}


def test_anonymous_gets_the_login_page_or_401_everywhere(app):
    client = app.test_client()
    for endpoint, method, url in routes(app):
        response = client.open(url, method=method)
        if endpoint.startswith("api."):
            assert response.status_code == 401 and response.is_json, (method, url)
        else:
            assert response.status_code == 302, (method, url, response.status_code)
            assert response.location.startswith("/login"), (method, url)


def test_a_viewer_reads_but_every_change_is_403(app):
    make_user("viewer@example.com", "viewer")
    client = logged_in(app, "viewer@example.com")
    for endpoint, method, url in routes(app):
        if endpoint.startswith("api.") or endpoint in SELF_SERVICE:
            continue
        status = client.open(url, method=method).status_code
        if method != "GET" or endpoint.startswith(ADMIN_BLUEPRINTS):
            assert status == 403, (method, url, status)
        else:
            assert status != 403, (method, url, status)
    assert client.get("/").status_code == 200, "still logged in after the walk"


def test_an_editor_changes_data_but_admin_areas_are_403(app):
    make_user("editor@example.com", "editor")
    client = logged_in(app, "editor@example.com")
    for endpoint, method, url in routes(app):
        if endpoint.startswith("api.") or endpoint in SELF_SERVICE:
            continue
        status = client.open(url, method=method).status_code
        if endpoint.startswith(ADMIN_BLUEPRINTS):
            assert status == 403, (method, url, status)
        else:
            # No CSRF token is sent: a change the role allows stops at the CSRF check (400), never at 403.
            assert status != 403, (method, url, status)


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_api_tokens_act_with_their_users_role(app, role):
    client = token_client(app, make_user(f"{role}@example.com", role))
    for endpoint, method, url in routes(app):
        if not endpoint.startswith("api."):
            continue
        status = client.open(url, method=method, json={}).status_code
        if method != "GET" and role == "viewer":
            assert status == 403, (method, url, status)
        else:
            assert status not in (401, 403), (method, url, status)


def test_admins_reach_users_and_rq(client):
    assert client.get("/users/").status_code == 200
    assert client.get("/users/tokens").status_code == 200
    assert client.get("/rq/").status_code == 200


def test_webhooks_in_the_url_map_and_the_status_lane_in_front_of_it_refuse_unsigned_posts(app):
    """The status callback is answered by a WSGI lane before Flask's routing, so the walk names it too."""
    from app.sending.messaging import STATUS_CALLBACK_PATH

    urls = [url for endpoint, _, url in routes(app, public=True) if endpoint.startswith("webhooks.")]
    assert STATUS_CALLBACK_PATH not in urls
    client = app.test_client()
    for token in ("", "a-token-we-hold"):
        app.config["TWILIO_AUTH_TOKEN"] = token
        for url in [*urls, STATUS_CALLBACK_PATH]:
            response = client.post(url, data={"MessageSid": "SM1", "MessageStatus": "delivered", "From": "+1"})
            assert response.status_code == 403, (token, url, response.status_code)
            forged = client.post(url, data={"MessageSid": "SM1"}, headers={"X-Twilio-Signature": "forged"})
            assert forged.status_code == 403, (token, url, forged.status_code)
