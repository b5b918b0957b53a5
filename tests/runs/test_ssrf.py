"""`api` nodes cannot reach the machine or its network: every spelling of 127.0.0.1 is refused, as a direct
call, in the simulator and in a real run; DNS rebinding meets the connect-time check; ports; URL encoding.

API_NODE_ALLOW_PRIVATE is off in these tests, and any port is allowed where the host is what is tested, so
the fake API (on a random loopback port) would answer if the guard let the call through.
"""

import socket

import pytest

from app.queues import get_redis
from app.runs import http_calls, simulator
from app.runs.http_calls import ApiCall, perform_calls
from tests.runs.test_runs_helpers import bodies_to, create_journey, example, phones, settle, start

ANY_PORT = frozenset()
HOSTS = [
    "１２７.０.０.１",  # fullwidth digits and dots
    "127。0。0。1",  # ideographic full stops
    "127｡0｡0｡1",  # halfwidth ideographic full stops
    "１２７。０。０。１",
    "2130706433",  # decimal
    "0x7f000001",  # hex
    "0x7f.0.0.1",
    "0177.0.0.1",  # octal
    "017700000001",
    "127.1",
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
    "[::ffff:7f00:1]",
    "[64:ff9b::7f00:1]",  # NAT64
    "[::1]",
    "0.0.0.0",
    "localhost",
    "LOCALHOST.",
    "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ",  # circled letters, IDNA-mapped to localhost
]


def port_of(fake_api) -> int:
    return int(fake_api.base_url.rsplit(":", 1)[1])


def hostile(fake_api, host: str, path: str = "/orders/7") -> str:
    return f"http://{host}:{port_of(fake_api)}{path}"


@pytest.mark.parametrize("host", HOSTS)
def test_every_spelling_of_loopback_is_refused(fake_api, host):
    fake_api.orders["7"] = {"status": "packing"}
    result = perform_calls([ApiCall(0, "GET", hostile(fake_api, host), {})], allowed_ports=ANY_PORT)[0]
    print(host, "->", result.error)
    assert result.status is None and result.error
    assert fake_api.requests == [], f"{host} reached the fake API"


def test_the_same_call_goes_through_when_private_addresses_are_allowed(fake_api):
    fake_api.orders["7"] = {"status": "packing"}
    result = perform_calls([ApiCall(0, "GET", hostile(fake_api, "１２７.０.０.１"), {})], allow_private=True)[0]
    assert (result.status, result.body) == (200, {"status": "packing"})


def test_dns_rebinding_is_refused_at_connect_time(fake_api, monkeypatch):
    """A name that passed the resolver's check but connects to loopback (rebinding) is refused by the socket."""

    async def rebinding_resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    monkeypatch.setattr(http_calls._GuardedResolver, "resolve", rebinding_resolve)
    url = f"http://shop.example.com:{port_of(fake_api)}/orders/7"
    refused = perform_calls([ApiCall(0, "GET", url, {})], allowed_ports=ANY_PORT)[0]
    assert refused.status is None and "API_NODE_ALLOW_PRIVATE" in refused.error
    assert fake_api.requests == []
    allowed = perform_calls([ApiCall(0, "GET", url, {})], allow_private=True)[0]
    assert allowed.status == 404 and len(fake_api.requests) == 1, "the rebinding resolver really leads to loopback"


def test_only_ports_80_and_443_unless_configured(app, fake_api):
    app.config.update(API_NODE_ALLOW_PRIVATE=False, API_NODE_ALLOWED_PORTS=None)
    result = perform_calls([ApiCall(0, "GET", "http://example.com:8080/x", {})])[0]
    assert "port 8080" in result.error and "API_NODE_ALLOWED_PORTS" in result.error
    app.config.update(API_NODE_ALLOW_PRIVATE=True, API_NODE_ALLOWED_PORTS=frozenset({80, 443}))
    result = perform_calls([ApiCall(0, "GET", fake_api.url("/orders/1"), {})], allow_private=True)[0]
    assert "API_NODE_ALLOWED_PORTS" in result.error and fake_api.requests == []
    app.config.update(API_NODE_ALLOWED_PORTS=frozenset({port_of(fake_api)}))
    assert perform_calls([ApiCall(0, "GET", fake_api.url("/orders/1"), {})], allow_private=True)[0].status == 404


def test_template_values_are_url_encoded_in_path_and_query(app, fake_api):
    doc = example("order-status")
    doc["nodes"][1]["url"] = fake_api.url("/orders/<<order_id>>?who=<<name>>")
    simulator.start(
        get_redis(), 1, doc, {"name": "Ana&admin=1", "order_id": "../admin/7"}, real_api=True, allow_private=True
    )
    (request,) = fake_api.requests
    assert request.path == "/orders/..%2Fadmin%2F7?who=Ana%26admin%3D1"


@pytest.mark.parametrize("host", HOSTS)
def test_the_simulator_refuses_loopback(app, fake_api, host):
    app.config.update(API_NODE_ALLOW_PRIVATE=False, API_NODE_ALLOWED_PORTS=ANY_PORT)
    doc = example("order-status")
    doc["nodes"][1]["url"] = hostile(fake_api, host, "/orders/<<order_id>>")
    simulation = simulator.start(get_redis(), 1, doc, {"order_id": "7"}, real_api=True, allow_private=False)
    assert fake_api.requests == []
    assert "couldn't look up order 7" in [item for item in simulation.chat if item["who"] == "journey"][-1]["text"]


@pytest.mark.parametrize("host", HOSTS)
def test_a_run_refuses_loopback(app, api, fake_twilio, fake_api, host):
    app.config.update(API_NODE_ALLOW_PRIVATE=False, API_NODE_ALLOWED_PORTS=ANY_PORT)
    fake_api.orders["5"] = {"status": "shipped", "tracking": "T5"}
    doc = example("order-status")
    doc["nodes"][1]["url"] = hostile(fake_api, host, "/orders/<<order_id>>")
    phone = phones(1)[0]
    start(api, create_journey(doc).id, [{"phone": phone, "order_id": "5"}])
    settle()
    assert fake_api.requests == []
    assert bodies_to(fake_twilio, phone) == ["Sorry, we couldn't look up order 5 right now."]
