"""A fake Twilio REST API on 127.0.0.1, for tests and benchmarks.

It runs aiohttp on its own event loop in a background thread, so a simulated
latency of 300-500 ms costs a sleeping coroutine, not a thread: hundreds of
concurrent keep-alive connections are served without queueing. It answers
`POST /2010-04-01/Accounts/{sid}/Messages.json` like Twilio (Basic auth, form
body, 201 with a Message resource, Twilio-shaped JSON errors), records every
attempt and every accepted message, and can be told to fail. `GET` on the same
path lists the accepted messages like Twilio (filters `To`, `From`, `DateSent`,
`DateSent<`, `DateSent>`; newest first; `PageSize` pages linked by
`next_page_uri`), so the twilio SDK's `messages.list`/`stream`/`page` work.

In tests use the `fake_twilio` fixture (`pytest_plugins = ["tests.fake_twilio"]`
in conftest); for benchmarks run it on its own:

    python -m tests.fake_twilio --port 8765 --latency 0.3

`GET /_fake/stats` then reports counts and `POST /_fake/reset` clears them.

Like Twilio, it posts status callbacks (`sent`, then `delivered`), signed, to a
message's `StatusCallback` URL (`--no-callbacks` / `callbacks=False` turns them
off); `callback_stats()` says how many were posted and answered. Fault modes:
`answer_late` (accept, then answer after the client gave up), `set_outage`
(answer every request with a 5xx) and `refuse_connections` (stop listening).
"""

import argparse
import asyncio
import base64
import json
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from urllib.parse import urlencode

import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

# The credentials and senders tests/conftest.py gives the app.
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
SMS_FROM = "+15005550001"
WHATSAPP_FROM = "whatsapp:+15005550002"
MESSAGES_PATH = "/2010-04-01/Accounts/{account_sid}/Messages.json"
DEFAULT_PAGE_SIZE = 50
LIST_FILTERS = ("To", "From", "DateSent", "DateSent<", "DateSent>")
MAX_PAGE_SIZE = 1000

DEFAULT_ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    63016: "Failed to send freeform message because you are outside the allowed window.",
}


@dataclass
class Attempt:
    """One request to the Messages endpoint, whatever the answer. `at` is `time.monotonic()`."""

    at: float
    fields: dict
    http_status: int
    code: int | None = None


@dataclass
class Call:
    """One message the fake accepted. `fields` holds the form (a list where a key repeats).

    `created` is its wall-clock time (UTC), `status` what the list answers for it.
    """

    at: float
    sid: str
    fields: dict = field(default_factory=dict)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "sent"
    error_code: int | None = None

    @property
    def to(self) -> str | None:
        return self.fields.get("To")

    @property
    def body(self) -> str | None:
        return self.fields.get("Body")


@dataclass
class _Failure:
    http_status: int
    code: int
    message: str


def _form_fields(form) -> dict:
    """A form as a plain dict: one value per key, or a list where the key repeats."""
    fields = {}
    for key in form:
        values = form.getall(key)
        fields[key] = values[0] if len(values) == 1 else list(values)
    return fields


def _without_channel(address: str) -> str:
    return address.split(":", 1)[1] if ":" in address else address


class FakeTwilio:
    """The fake server. `start()` it (or use it as a context manager), then point the SDK at `base_url`.

    `max_in_flight` is the most requests it was answering at once since the last reset.
    """

    def __init__(
        self,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        host="127.0.0.1",
        port=0,
        latency=0.0,
        callbacks=True,
        callback_delay=0.05,
    ):
        self.callbacks = callbacks
        self.callback_delay = callback_delay
        self._callback_counts = {"posted": 0, "answered": 0, "refused": 0, "errors": 0}
        self._last_callback_at = 0.0
        self._late_answers: list[float] = []
        self._outage: _Failure | None = None
        self._site: web.TCPSite | None = None
        self._client = None
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.host = host
        self.port = port
        self.latency = latency
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._attempts: list[Attempt] = []
        self._fail_next: list[_Failure] = []
        self._fail_for: dict[str, _Failure] = {}
        self._fail_next_list: list[_Failure] = []
        self._list_requests: list[dict] = []
        self._in_flight = 0
        self._generation = 0  # bumped by reset(), so requests still sleeping from before it are not counted
        self.max_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "FakeTwilio":
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve():
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._start_site())
            except BaseException as error:  # e.g. the port is taken: report it to start()
                failure.append(error)
                self._loop.close()
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._shut_down())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="fake-twilio", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    async def _start_site(self):
        app = web.Application()
        app.router.add_post(MESSAGES_PATH, self._create_message)
        app.router.add_get(MESSAGES_PATH, self._list_messages)
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_get("/_fake/count", self._count)
        app.router.add_post("/_fake/reset", self._reset)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=2048, reuse_address=True)
        await site.start()
        self._site = site
        self.port = self._runner.addresses[0][1]

    async def _shut_down(self):
        """Stop serving, then cancel requests still sleeping out their latency."""
        if self._client is not None:
            await self._client.close()
        await self._runner.cleanup()
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> "FakeTwilio":
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # -- what tests use ----------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def messages_url(self) -> str:
        return self.base_url + MESSAGES_PATH.format(account_sid=self.account_sid)

    @property
    def call_count(self) -> int:
        """How many calls were accepted (cheap to poll, unlike `calls`, which copies them)."""
        return len(self._calls)

    @property
    def calls(self) -> list[Call]:
        """Accepted messages, in arrival order (a copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def attempts(self) -> list[Attempt]:
        """Every request to the Messages endpoint, accepted or not, in arrival order (a copy)."""
        with self._lock:
            return list(self._attempts)

    @property
    def list_requests(self) -> list[dict]:
        """The query of every GET on the Messages list, answered or refused, in arrival order (a copy)."""
        with self._lock:
            return list(self._list_requests)

    def env(self, **overrides) -> dict:
        """Environment variables that point the app at this fake (for monkeypatch.setenv or config)."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_API_BASE_URL": self.base_url,
            "TWILIO_FROM": SMS_FROM,
            "TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
            "DRY_RUN": "0",
            **overrides,
        }

    def set_latency(self, seconds: float) -> None:
        """Delay every answer by this long (each request waits on its own; others are not held up)."""
        self.latency = seconds

    def fail_next(self, n: int = 1, status: int = 429, code: int = 20429, message: str | None = None) -> None:
        """Refuse the next `n` requests, whoever they are for."""
        failure = _Failure(status, code, message or DEFAULT_ERROR_MESSAGES.get(code, f"Error {code}"))
        with self._lock:
            self._fail_next.extend([failure] * n)

    def fail_for(self, to: str, status: int = 400, code: int = 21211, message: str | None = None) -> None:
        """Refuse every request for this recipient (with or without a `whatsapp:` prefix) until reset."""
        failure = _Failure(status, code, message or DEFAULT_ERROR_MESSAGES.get(code, f"Error {code}"))
        with self._lock:
            self._fail_for[_without_channel(to)] = failure

    def fail_next_list(self, n: int = 1, status: int = 503, code: int = 20500, message: str | None = None) -> None:
        """Refuse the next `n` GETs of the Messages list (a Twilio outage while we look messages up)."""
        failure = _Failure(status, code, message or DEFAULT_ERROR_MESSAGES.get(code, f"Error {code}"))
        with self._lock:
            self._fail_next_list.extend([failure] * n)

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> None:
        """Change what the list answers for an accepted message (e.g. `delivered`, or `failed` with a code)."""
        with self._lock:
            call = next(call for call in self._calls if call.sid == sid)
            call.status, call.error_code = status, error_code

    def answer_late(self, n: int = 1, delay: float = 2.0) -> None:
        """Accept the next `n` messages at once but answer only after `delay` s (past the client's timeout)."""
        with self._lock:
            self._late_answers.extend([delay] * n)

    def set_outage(self, status: int | None = 503, code: int = 20500) -> None:
        """Answer every create and list request with this 5xx until called with None (Twilio down)."""
        with self._lock:
            self._outage = None if status is None else _Failure(status, code, "Service Unavailable")

    def refuse_connections(self) -> None:
        """Stop listening (new connections are refused) until `accept_connections()`."""
        self._on_loop(self._stop_listening())

    def accept_connections(self) -> None:
        self._on_loop(self._listen_again())

    def _on_loop(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _stop_listening(self):
        if self._site is not None:
            await self._site.stop()
            self._site = None
        for connection in list(self._runner.server.connections if self._runner.server else []):
            connection.force_close()

    async def _listen_again(self):
        if self._site is None:
            self._site = web.TCPSite(self._runner, self.host, self.port, backlog=2048, reuse_address=True)
            await self._site.start()

    def callback_stats(self) -> dict:
        """Status callbacks posted and answered (2xx) since the last reset, and when the last one was answered."""
        with self._lock:
            return {**self._callback_counts, "last_answered_at": self._last_callback_at}

    def reset(self) -> None:
        """Forget calls, attempts, scripted failures, and set the latency back to 0."""
        with self._lock:
            self._late_answers.clear()
            self._outage = None
            self._callback_counts = dict.fromkeys(self._callback_counts, 0)
            self._last_callback_at = 0.0
            self._calls.clear()
            self._attempts.clear()
            self._fail_next.clear()
            self._fail_for.clear()
            self._fail_next_list.clear()
            self._list_requests.clear()
            self._generation += 1
            self._in_flight = 0
            self.max_in_flight = 0
        self.latency = 0.0

    def max_in_any_window(self, seconds: float = 1.0) -> int:
        """The most accepted calls that arrived within any sliding window of `seconds`."""
        return _busiest(sorted(call.at for call in self.calls), seconds)

    def max_per_sender(self, seconds: float = 1.0) -> dict[str, int]:
        """`max_in_any_window` per `From` address."""
        by_sender: dict[str, list[float]] = {}
        for call in self.calls:
            by_sender.setdefault(call.fields.get("From") or "", []).append(call.at)
        return {sender: _busiest(sorted(times), seconds) for sender, times in by_sender.items()}

    def wait_for_calls(self, count: int, timeout: float = 5.0) -> list[Call]:
        """Poll until at least `count` messages were accepted (or `timeout` passes); return them."""
        deadline = time.monotonic() + timeout
        while len(self._calls) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.calls

    # -- the HTTP side -----------------------------------------------------

    async def _create_message(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        fields = _form_fields(await request.post())
        failure = self._decide(request, fields)
        with self._lock:
            self._attempts.append(
                Attempt(arrived, fields, failure.http_status if failure else 201, failure.code if failure else None)
            )
            late = self._late_answers.pop(0) if failure is None and self._late_answers else 0.0
            if failure is None:
                call = Call(arrived, "SM" + uuid.uuid4().hex, fields)
                self._calls.append(call)
        await self._answer_after_latency()
        if failure:
            return _error_response(failure)
        if self.callbacks and fields.get("StatusCallback"):
            asyncio.get_running_loop().create_task(self._post_callbacks(call))
        if late:
            await asyncio.sleep(late)
        return web.json_response(self._message_resource(call.sid, fields, call.created), status=201)

    async def _post_callbacks(self, call: Call) -> None:
        """Post `sent`, then `delivered`, signed, to the message's StatusCallback URL, as Twilio does."""
        from aiohttp import ClientSession, ClientTimeout, TCPConnector

        if self._client is None:
            self._client = ClientSession(connector=TCPConnector(limit=64), timeout=ClientTimeout(total=30))
        url = call.fields["StatusCallback"]
        for status in ("sent", "delivered"):
            await asyncio.sleep(self.callback_delay)
            params = status_callback_params(
                call.sid, status, to=call.fields.get("To"), from_=call.fields.get("From"), account_sid=self.account_sid
            )
            headers = {"X-Twilio-Signature": sign(url, params, self.auth_token)}
            with self._lock:
                self._callback_counts["posted"] += 1
            try:
                async with self._client.post(url, data=params, headers=headers) as answer:
                    await answer.read()
                    outcome = "answered" if answer.status < 300 else "refused"
            except Exception:
                outcome = "errors"
            with self._lock:
                self._callback_counts[outcome] += 1
                if outcome == "answered":
                    self._last_callback_at = time.monotonic()

    async def _list_messages(self, request: web.Request) -> web.Response:
        """Twilio's Messages list: accepted messages matching the filters, newest first, one page of them."""
        query = request.query
        authorised = self._authorised(request)
        with self._lock:
            self._list_requests.append(dict(query))
            failure = None if authorised else _Failure(401, 20003, DEFAULT_ERROR_MESSAGES[20003])
            if authorised and self._outage is not None:
                failure = self._outage
            elif authorised and self._fail_next_list:
                failure = self._fail_next_list.pop(0)
        await self._answer_after_latency()
        if failure:
            return _error_response(failure)
        try:
            page_size = min(MAX_PAGE_SIZE, max(1, int(query.get("PageSize") or DEFAULT_PAGE_SIZE)))
            page_number = max(0, int(query.get("Page") or 0))
            date_filters = [
                (name, _date_filter(query[name])) for name in ("DateSent", "DateSent<", "DateSent>") if query.get(name)
            ]
        except ValueError as error:
            return _error_response(_Failure(400, 20001, f"Invalid parameter: {error}"))
        with self._lock:
            calls = [call for call in self._calls if _listed(call, query, date_filters)]
        calls.reverse()  # newest first: arrival order is creation order
        token = query.get("PageToken") or ""
        if token:
            after = [n for n, call in enumerate(calls) if "PA" + call.sid == token]
            calls = calls[after[0] + 1 :] if after else []
        page, more = calls[:page_size], len(calls) > page_size
        path = MESSAGES_PATH.format(account_sid=self.account_sid)
        filters = {name: query[name] for name in LIST_FILTERS if query.get(name)}

        def page_uri(number: int, page_token: str | None = None) -> str:
            params = {**filters, "PageSize": page_size, "Page": number}
            if page_token:
                params["PageToken"] = page_token
            return f"{path}?{urlencode(params)}"

        start = page_number * page_size
        return web.json_response(
            {
                "end": start + max(len(page), 1) - 1,
                "first_page_uri": page_uri(0),
                "messages": [self._message_resource(call.sid, call.fields, call.created, call) for call in page],
                "next_page_uri": page_uri(page_number + 1, "PA" + page[-1].sid) if more else None,
                "page": page_number,
                "page_size": page_size,
                "previous_page_uri": page_uri(page_number - 1) if page_number else None,
                "start": start,
                "uri": page_uri(page_number, token or None),
            }
        )

    async def _answer_after_latency(self) -> None:
        with self._lock:
            generation = self._generation
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
        finally:
            with self._lock:
                if generation == self._generation:
                    self._in_flight -= 1

    def _decide(self, request: web.Request, fields: dict) -> _Failure | None:
        """The failure to answer with, or None to accept the message."""
        if not self._authorised(request):
            return _Failure(401, 20003, DEFAULT_ERROR_MESSAGES[20003])
        with self._lock:
            if self._outage is not None:
                return self._outage
            if self._fail_next:
                return self._fail_next.pop(0)
            scripted = self._fail_for.get(_without_channel(fields.get("To") or ""))
        if scripted:
            return scripted
        if not fields.get("To"):
            return _Failure(400, 21604, DEFAULT_ERROR_MESSAGES[21604])
        if not (fields.get("From") or fields.get("MessagingServiceSid")):
            return _Failure(400, 21603, DEFAULT_ERROR_MESSAGES[21603])
        if not (fields.get("Body") or fields.get("MediaUrl") or fields.get("ContentSid")):
            return _Failure(400, 21602, DEFAULT_ERROR_MESSAGES[21602])
        return None

    def _authorised(self, request: web.Request) -> bool:
        if request.match_info["account_sid"] != self.account_sid:
            return False
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == expected

    def _message_resource(self, sid: str, fields: dict, created: datetime, listed: Call | None = None) -> dict:
        """A Message resource: as `create` answers it (status `queued`, not sent yet), or as listed later."""
        stamp = format_datetime(created)
        media = fields.get("MediaUrl")
        uri = MESSAGES_PATH.format(account_sid=self.account_sid).replace(".json", f"/{sid}.json")
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": fields.get("Body", ""),
            "date_created": stamp,
            "date_sent": stamp if listed else None,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": listed.error_code if listed else None,
            "error_message": None,
            "from": fields.get("From"),
            "messaging_service_sid": fields.get("MessagingServiceSid"),
            "num_media": str(len(media) if isinstance(media, list) else int(bool(media))),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": listed.status if listed else "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": fields.get("To"),
            "uri": uri,
        }

    async def _count(self, request: web.Request) -> web.Response:
        """Calls and attempts so far, for polling: O(1), unlike `_stats`, whose windows sort every call."""
        with self._lock:
            return web.json_response({"calls": self.call_count, "attempts": len(self._attempts)})

    async def _stats(self, request: web.Request) -> web.Response:
        with self._lock:
            calls, attempts = len(self._calls), len(self._attempts)
            last_call = self._calls[-1].at if self._calls else 0.0
        return web.json_response(
            {
                "calls": calls,
                "attempts": attempts,
                "max_per_second": self.max_in_any_window(1.0),
                "last_call_at": last_call,
                "callbacks": self.callback_stats(),
                "per_sender_max_per_second": self.max_per_sender(1.0),
            }
        )

    async def _reset(self, request: web.Request) -> web.Response:
        latency = self.latency
        self.reset()
        self.latency = latency
        return web.json_response({"reset": True})


def _busiest(times: list[float], seconds: float) -> int:
    """The most of these (sorted) moments within any sliding window of `seconds`."""
    best = start = 0
    for end, at in enumerate(times):
        while start < end and at - times[start] >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def _date_filter(value: str) -> date | datetime:
    """A `DateSent` value as Twilio takes it: `YYYY-MM-DD`, or `YYYY-MM-DDThh:mm:ssZ` (GMT)."""
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _listed(call: Call, query, date_filters: list[tuple[str, date | datetime]]) -> bool:
    """Does this accepted message pass the list's `To`, `From` and `DateSent` filters?"""
    if query.get("To") and call.to != query["To"]:
        return False
    if query.get("From") and call.fields.get("From") != query["From"]:
        return False
    sent = call.created.replace(microsecond=0)  # Twilio's dates have whole seconds
    for name, bound in date_filters:
        if name == "DateSent":  # a day (the SDK sends a date as midnight of it)
            if sent.date() != (bound.date() if isinstance(bound, datetime) else bound):
                return False
            continue
        value = sent if isinstance(bound, datetime) else sent.date()
        if (name == "DateSent<" and value > bound) or (name == "DateSent>" and value < bound):
            return False
    return True


def _error_response(failure: _Failure) -> web.Response:
    body = {
        "code": failure.code,
        "message": failure.message,
        "more_info": f"https://www.twilio.com/docs/errors/{failure.code}",
        "status": failure.http_status,
    }
    return web.Response(text=json.dumps(body), status=failure.http_status, content_type="application/json")


# -- webhook helpers ---------------------------------------------------------


def sign(url: str, params: dict, auth_token: str = AUTH_TOKEN) -> str:
    """The `X-Twilio-Signature` Twilio would send for a POST of `params` to `url`."""
    return RequestValidator(auth_token).compute_signature(url, params)


def status_callback_params(
    sid: str, status: str, error_code: int | str | None = None, *, to=None, from_=None, account_sid=ACCOUNT_SID
) -> dict:
    """The form fields of a Twilio status callback for message `sid`."""
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
    }
    if to:
        params["To"] = to
    if from_:
        params["From"] = from_
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


# -- pytest ------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_twilio_server():
    """One fake Twilio for the whole test session (not reset: see `fake_twilio`); tests turn callbacks on."""
    with FakeTwilio(callbacks=False) as server:
        yield server


@pytest.fixture
def fake_twilio(fake_twilio_server):
    """The session's fake Twilio, cleared before and after the test."""
    fake_twilio_server.reset()
    yield fake_twilio_server
    fake_twilio_server.reset()
    fake_twilio_server.callbacks = False
    if fake_twilio_server._site is None:
        fake_twilio_server.accept_connections()


# -- standalone --------------------------------------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Twilio API until interrupted.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--account-sid", default=ACCOUNT_SID)
    parser.add_argument("--auth-token", default=AUTH_TOKEN)
    parser.add_argument("--no-callbacks", action="store_true", help="do not post status callbacks")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with FakeTwilio(
        args.account_sid, args.auth_token, args.host, args.port, args.latency, callbacks=not args.no_callbacks
    ) as fake:
        for name, value in fake.env().items():
            print(f"{name}={value}", flush=True)
        print(f"fake Twilio listening on {fake.base_url} (latency {args.latency:g} s)", flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
