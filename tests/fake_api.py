"""A fake HTTP API on 127.0.0.1 for journeys' `api` nodes, in tests and benchmarks.

A threaded stdlib server (Nagle off, so keep-alive clients do not stall)
that records every request and answers a few routes:

- `GET /orders/<id>`: the JSON order set with `orders[id] = {...}`, else 404.
- `/status/<code>`: that status with a small JSON body.
- `/slow/<seconds>`: waits, then answers 200 JSON.
- `/big/<bytes>`: a JSON document of about that size.
- `/text`: 200 `text/plain`.
- `/redirect?to=<url>`: 302 to that URL.
- `/echo` (any method): the request as JSON (`method`, `path`, `headers`, `body`).

In tests use the `fake_api` fixture (`pytest_plugins = ["tests.fake_api"]`).
"""

import json
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class ApiRequest:
    method: str
    path: str
    headers: dict
    body: bytes


class FakeApi:
    """The server; `start()` it (or use it as a context manager) and call `url(path)`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.orders: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._requests: list[ApiRequest] = []
        self._server = _QuietServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def requests(self) -> list[ApiRequest]:
        with self._lock:
            return list(self._requests)

    def record(self, request: ApiRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
        self.orders.clear()

    def start(self) -> "FakeApi":
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> "FakeApi":
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (size cap, timeout) is not an error worth a traceback."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(fake: FakeApi):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args):  # keep test output quiet
            pass

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            fake.record(ApiRequest(self.command, self.path, dict(self.headers.items()), body))
            segments = [segment for segment in parts.path.split("/") if segment]
            route = segments[0] if segments else ""
            if route == "orders" and len(segments) == 2:
                order = fake.orders.get(segments[1])
                if order is None:
                    return self._json(404, {"error": f"no order {segments[1]}"})
                return self._json(200, order)
            if route == "status" and len(segments) == 2:
                return self._json(int(segments[1]), {"status": int(segments[1])})
            if route == "slow" and len(segments) == 2:
                time.sleep(float(segments[1]))
                return self._json(200, {"slept": float(segments[1])})
            if route == "big" and len(segments) == 2:
                return self._json(200, {"data": "x" * int(segments[1])})
            if route == "text":
                return self._send(200, b"plain words", "text/plain")
            if route == "redirect":
                target = parse_qs(parts.query).get("to", ["/echo"])[0]
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if route == "echo":
                return self._json(
                    200,
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "body": body.decode("utf-8", "replace"),
                    },
                )
            return self._json(404, {"error": "no such route"})

        def _json(self, status: int, data) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _send(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (size cap, timeout)
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


@pytest.fixture(scope="session")
def fake_api_server():
    with FakeApi() as server:
        yield server


@pytest.fixture
def fake_api(fake_api_server):
    """The session's fake API, cleared before and after the test."""
    fake_api_server.reset()
    yield fake_api_server
    fake_api_server.reset()
