"""Carry out the HTTP calls of journeys' `api` nodes, safely, many at once.

A journey author chooses the URL, so a call must not become a way into the
machine or its network, nor hang or flood a worker:

- the host is checked as aiohttp itself reads the URL (yarl: `１２７.０.０.１`
  and `127。0。0。1` are 127.0.0.1), every address the name resolves to is
  checked, and the address of each socket is checked again just before it
  connects (aiohttp's `socket_factory`), so IP literals, IDNA tricks and DNS
  rebinding all meet the same rule: loopback, private, link-local, multicast
  and reserved addresses are refused unless `allow_private`
  (`API_NODE_ALLOW_PRIVATE`). aiohttp >= 3.14 also refuses legacy numeric
  IPv4 forms (`2130706433`, `0177.0.0.1`, `127.1`);
- only ports 80 and 443 unless `allowed_ports` says otherwise
  (`API_NODE_ALLOWED_PORTS`; any port when private addresses are allowed and
  no list is given);
- redirects are followed only within the same scheme, host and port (at
  most `MAX_REDIRECTS`); a redirect elsewhere is answered as is (a 3xx, so
  the journey takes its `failure` edge) with an error saying why;
- the timeout is the node's, capped at 30 s; the body read is capped at
  `MAX_RESPONSE_BYTES` (1 MiB) however the server frames it.

Failures come back as `ApiResult`s, never as exceptions. A JSON response
(by content type) is parsed into `body`; other bodies are not kept.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from flask import current_app, has_app_context
from yarl import URL

MAX_TIMEOUT = 30.0
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
CONCURRENCY = 50
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_PORTS = frozenset({80, 443})


@dataclass(frozen=True)
class ApiCall:
    """One request to make; `key` is the caller's id for it, echoed in the result."""

    key: Any
    method: str
    url: str
    headers: dict
    body: Any = None
    timeout: float = 10.0


@dataclass(frozen=True)
class ApiResult:
    """What one call gave: HTTP status (None when no answer came), JSON body, error text, time taken."""

    key: Any
    status: int | None
    body: Any = None
    error: str | None = None
    duration_ms: float = 0.0


class RefusedAddress(OSError):
    """The host resolves to an address `api` nodes may not call."""


@dataclass(frozen=True)
class _Policy:
    allow_private: bool
    ports: frozenset | None  # None: any port


def perform_calls(
    calls: list[ApiCall], allow_private: bool = False, allowed_ports: frozenset | None = None
) -> list[ApiResult]:
    """Make every call, concurrently; results come back in input order.

    `allowed_ports` defaults to the app's `API_NODE_ALLOWED_PORTS` (80 and 443 unless configured).
    """
    if not calls:
        return []
    if allowed_ports is None and has_app_context():
        allowed_ports = current_app.config.get("API_NODE_ALLOWED_PORTS")
    if allowed_ports is None:
        allowed_ports = None if allow_private else DEFAULT_PORTS
    return asyncio.run(_perform_all(calls, _Policy(allow_private, allowed_ports or None)))


NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


def address_problem(address: str, allow_private: bool) -> str | None:
    """Why `address` (an IP) may not be called, or None. IPv6 forms that carry an IPv4 address
    (IPv4-mapped, NAT64, 6to4) are judged by that IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if allow_private:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_PREFIX:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        else:
            ip = ip.ipv4_mapped or ip.sixtofour or ip
    if ip.is_global and not ip.is_multicast:
        return None
    return (
        f"address {address} is loopback, private or reserved; api nodes may call it only with API_NODE_ALLOW_PRIVATE=1"
    )


def _guarded_socket(allow_private: bool):
    """aiohttp's socket factory: the last check of the address a socket is about to connect to."""

    def create(addr_info) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        problem = address_problem(sockaddr[0], allow_private)
        if problem:
            raise RefusedAddress(problem)
        return socket.socket(family, type_, proto)

    return create


class _GuardedResolver(AbstractResolver):
    """Resolves like aiohttp does, then refuses the name if any of its addresses is off limits."""

    def __init__(self, allow_private: bool):
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        results = await self._inner.resolve(host, port, family)
        for result in results:
            problem = address_problem(result["host"], self._allow_private)
            if problem:
                raise RefusedAddress(f"{host}: {problem}")
        return results

    async def close(self) -> None:
        await self._inner.close()


async def _perform_all(calls: list[ApiCall], policy: _Policy) -> list[ApiResult]:
    connector = aiohttp.TCPConnector(
        resolver=_GuardedResolver(policy.allow_private),
        socket_factory=_guarded_socket(policy.allow_private),
        limit=CONCURRENCY,
    )
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        return list(await asyncio.gather(*(_perform(session, call, policy) for call in calls)))


async def _perform(session: aiohttp.ClientSession, call: ApiCall, policy: _Policy) -> ApiResult:
    started = time.perf_counter()

    def result(status=None, body=None, error=None) -> ApiResult:
        duration = round((time.perf_counter() - started) * 1000, 1)
        return ApiResult(call.key, status, body, error, duration)

    method = (call.method or "GET").upper()
    if method not in METHODS:
        return result(error=f"method {call.method!r} is not one of {', '.join(METHODS)}")
    timeout = min(float(call.timeout or 10.0), MAX_TIMEOUT)
    try:
        async with asyncio.timeout(timeout):
            return await _follow(session, call, method, policy, result)
    except TimeoutError:
        return result(error=f"no answer within {timeout:g} s")
    except RefusedAddress as error:
        return result(error=str(error))
    except aiohttp.ClientConnectorError as error:
        cause = error.os_error if isinstance(error.os_error, RefusedAddress) else error
        return result(error=f"could not connect: {cause}")
    except (aiohttp.ClientError, OSError, ValueError) as error:
        return result(error=f"{type(error).__name__}: {error}")


async def _follow(session, call: ApiCall, method: str, policy: _Policy, result) -> ApiResult:
    url, body = call.url, call.body
    for _ in range(MAX_REDIRECTS + 1):
        problem = _url_problem(url, policy)
        if problem:
            return result(error=problem)
        request = {"headers": {str(k): str(v) for k, v in (call.headers or {}).items()}, "allow_redirects": False}
        if body is not None and method != "GET":
            request["data" if isinstance(body, str) else "json"] = body
        async with session.request(method, url, **request) as response:
            location = response.headers.get("Location")
            if response.status in (301, 302, 303, 307, 308) and location:
                target = urljoin(url, location)
                if _origin(target) != _origin(url):
                    return result(response.status, error=f"redirect to another host refused: {target}")
                if response.status in (301, 302, 303):
                    method, body = "GET", None
                url = target
                continue
            raw = await _read_capped(response)
            if raw is None:
                return result(response.status, error=f"response larger than {MAX_RESPONSE_BYTES} bytes refused")
            return result(response.status, _json_body(response, raw))
    return result(error=f"more than {MAX_REDIRECTS} redirects")


async def _read_capped(response: aiohttp.ClientResponse) -> bytes | None:
    """The body, or None when it is longer than the cap (declared or actual)."""
    if (response.content_length or 0) > MAX_RESPONSE_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json_body(response: aiohttp.ClientResponse, raw: bytes) -> Any:
    if "json" not in (response.content_type or ""):
        return None
    try:
        return json.loads(raw.decode(response.charset or "utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def _url_problem(url: str, policy: _Policy) -> str | None:
    """Check the URL as aiohttp will read it (yarl normalises Unicode digits, dots and IDNA)."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as error:
        return f"url {url!r} is not a valid URL: {error}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"url {url!r} must start with http:// or https:// and name a host"
    try:
        problem = address_problem(parsed.host, policy.allow_private)
    except ValueError:
        problem = None  # a host name: its addresses are checked when resolving and again when connecting
    if problem is None and policy.ports is not None and parsed.port not in policy.ports:
        allowed = ", ".join(str(port) for port in sorted(policy.ports))
        problem = (
            f"port {parsed.port} of {url!r} is not allowed: api nodes may call ports {allowed} (API_NODE_ALLOWED_PORTS)"
        )
    return problem


def _origin(url: str) -> tuple:
    parsed = URL(url)
    return parsed.scheme, (parsed.host or "").lower(), parsed.port
