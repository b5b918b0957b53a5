"""twilio's aiohttp client with a pool sized to our concurrency and an optional API base URL.

Rewriting the scheme and host of every URL (rather than setting
`client.api.base_url`) keeps working when `TWILIO_EDGE`/`TWILIO_REGION` change
the host name: that is how tests and benchmarks reach the fake Twilio server.
"""

import base64
from functools import lru_cache
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from twilio.http.async_http_client import AsyncTwilioHttpClient


class PooledAsyncHttpClient(AsyncTwilioHttpClient):
    """Build it inside the event loop that will use it (aiohttp binds sessions to a loop)."""

    def __init__(self, *, pool_size: int, timeout: float, base_url: str | None = None):
        super().__init__(pool_connections=False, timeout=timeout)
        self.session = ClientSession(
            connector=TCPConnector(limit=pool_size),
            timeout=ClientTimeout(total=timeout),
        )
        self._base = urlsplit(base_url.rstrip("/")) if base_url else None

    def rebase(self, url: str) -> str:
        """Point `url` at the configured base URL, keeping its path and query."""
        if self._base is None:
            return url
        parts = urlsplit(url)
        return urlunsplit(
            (self._base.scheme, self._base.netloc, self._base.path + parts.path, parts.query, parts.fragment)
        )

    async def request(
        self,
        method,
        url,
        params=None,
        data=None,
        headers=None,
        auth=None,
        timeout=None,
        allow_redirects=False,
    ):
        if auth is not None:
            # A ready-made header instead of aiohttp's deprecated BasicAuth, built once per credentials.
            headers = {**(headers or {}), "Authorization": _basic_authorization(*auth)}
        if isinstance(data, dict):
            # The form encoded here, as aiohttp would: its FormData also builds a multipart writer (and a random
            # boundary from os.urandom) for every request, a few percent of a sending worker's time.
            data = urlencode(data, doseq=True).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        # aiohttp reads timeout=None as "no timeout at all", so always pass ours.
        return await super().request(
            method,
            self.rebase(url),
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout or self.timeout,
            allow_redirects=allow_redirects,
        )


@lru_cache(maxsize=8)
def _basic_authorization(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
