"""`app.runs.http_calls`: what an `api` node may call, and how answers are read (a real local HTTP server)."""

import pytest

from app.runs.http_calls import MAX_RESPONSE_BYTES, ApiCall, address_problem, perform_calls


def _one(call: ApiCall, allow_private: bool = True):
    return perform_calls([call], allow_private=allow_private)[0]


def test_json_answer_is_parsed_and_timed(fake_api):
    fake_api.orders["1"] = {"status": "shipped", "items": [{"sku": "A"}]}
    result = _one(ApiCall("k", "GET", fake_api.url("/orders/1"), {"Accept": "application/json"}))
    assert (result.key, result.status, result.error) == ("k", 200, None)
    assert result.body == {"status": "shipped", "items": [{"sku": "A"}]}
    assert result.duration_ms >= 0
    assert fake_api.requests[0].headers["Accept"] == "application/json"


def test_methods_headers_and_bodies_are_sent(fake_api):
    json_body = _one(ApiCall(1, "POST", fake_api.url("/echo"), {"X-Key": "abc"}, {"order": "7"})).body
    assert (json_body["method"], json_body["body"]) == ("POST", '{"order": "7"}')
    assert json_body["headers"]["X-Key"] == "abc" and json_body["headers"]["Content-Type"] == "application/json"
    text_body = _one(ApiCall(2, "put", fake_api.url("/echo"), {}, "plain text")).body
    assert (text_body["method"], text_body["body"]) == ("PUT", "plain text")
    assert _one(ApiCall(3, "TRACE", fake_api.url("/echo"), {})).error.startswith("method 'TRACE'")


def test_calls_run_concurrently_and_keep_their_order(fake_api):
    calls = [ApiCall(n, "GET", fake_api.url("/slow/0.3"), {}) for n in range(10)]
    results = perform_calls(calls, allow_private=True)
    assert [result.key for result in results] == list(range(10))
    assert all(result.status == 200 for result in results)
    assert max(result.duration_ms for result in results) < 3000  # not 10 x 0.3 s one after another


@pytest.mark.parametrize(
    "path, status, error",
    [
        ("/status/503", 503, None),
        ("/text", 200, None),
        ("/slow/2", None, "no answer within 0.5 s"),
        (f"/big/{MAX_RESPONSE_BYTES}", 200, "larger than"),
        ("/redirect?to=http://other.example/", 302, "redirect to another host refused"),
    ],
)
def test_failures_come_back_as_results(fake_api, path, status, error):
    result = _one(ApiCall(0, "GET", fake_api.url(path), {}, timeout=0.5))
    assert result.status == status
    assert (result.error is None) if error is None else (error in result.error)
    assert result.body is None or path == "/status/503"


def test_redirect_within_the_same_host_is_followed(fake_api):
    fake_api.orders["2"] = {"status": "late"}
    result = _one(ApiCall(0, "GET", fake_api.url("/redirect?to=/orders/2"), {}))
    assert (result.status, result.body) == (200, {"status": "late"})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:1/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_private_addresses_are_refused_unless_allowed(url):
    result = _one(ApiCall(0, "GET", url, {}), allow_private=False)
    assert result.status is None and "API_NODE_ALLOW_PRIVATE" in result.error


def test_bad_urls_are_refused():
    for url in ("ftp://example.com/x", "not a url", "http:///path"):
        assert "must start with http" in _one(ApiCall(0, "GET", url, {})).error


def test_address_rules():
    assert address_problem("8.8.8.8", allow_private=False) is None
    assert address_problem("10.0.0.1", allow_private=True) is None
    assert address_problem("100.64.0.1", allow_private=False)  # carrier-grade NAT is not the internet
    assert address_problem("224.0.0.1", allow_private=False)  # multicast
