"""Carry out the HTTP calls of journeys' `api` nodes, safely, many at once.

A journey author chooses the URL, so a call must not become a way into the
machine or its network, nor hang or flood a worker:

- every address the host name resolves to is checked (and IP literals too);
  loopback, private, link-local and other non-global addresses are refused
  unless `allow_private` (`API_NODE_ALLOW_PRIVATE`). The check lives in the
  resolver aiohttp connects with, so the address checked is the one used;
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
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

MAX_TIMEOUT = 30.0
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
CONCURRENCY = 50
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


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


def perform_calls(calls: list[ApiCall], allow_private: bool = False) -> list[ApiResult]:
    """Make every call, concurrently; results come back in input order."""
    if not calls:
        return []
    return asyncio.run(_perform_all(calls, allow_private))


def address_problem(address: str, allow_private: bool) -> str | None:
    """Why `address` (an IP) may not be called, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private or (ip.is_global and not ip.is_multicast):
        return None
    return (
        f"address {address} is loopback, private or reserved; api nodes may call it only with API_NODE_ALLOW_PRIVATE=1"
    )


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


async def _perform_all(calls: list[ApiCall], allow_private: bool) -> list[ApiResult]:
    connector = aiohttp.TCPConnector(resolver=_GuardedResolver(allow_private), limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        return list(await asyncio.gather(*(_perform(session, call, allow_private) for call in calls)))


async def _perform(session: aiohttp.ClientSession, call: ApiCall, allow_private: bool) -> ApiResult:
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
            return await _follow(session, call, method, allow_private, result)
    except TimeoutError:
        return result(error=f"no answer within {timeout:g} s")
    except RefusedAddress as error:
        return result(error=str(error))
    except aiohttp.ClientConnectorError as error:
        cause = error.os_error if isinstance(error.os_error, RefusedAddress) else error
        return result(error=f"could not connect: {cause}")
    except (aiohttp.ClientError, OSError, ValueError) as error:
        return result(error=f"{type(error).__name__}: {error}")


async def _follow(session, call: ApiCall, method: str, allow_private: bool, result) -> ApiResult:
    url, body = call.url, call.body
    for _ in range(MAX_REDIRECTS + 1):
        problem = _url_problem(url, allow_private)
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


def _url_problem(url: str, allow_private: bool) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"url {url!r} must start with http:// or https:// and name a host"
    try:
        return address_problem(parts.hostname, allow_private)
    except ValueError:
        return None  # a host name, checked by the resolver when connecting


def _origin(url: str) -> tuple:
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default_port
