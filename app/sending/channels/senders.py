"""Send batches of messages through Twilio, many at once, behind a small synchronous API.

Twilio takes 300-500 ms per call, so one worker reaches a useful rate only by
keeping many calls in flight: `TwilioSender` runs `concurrency` coroutines on
twilio's aiohttp client. Its event loop and connection pool live as long as the
sender, so an RQ job can call `send_many` again and again without reconnecting.
Failures come back as `SendResult`s, never as exceptions, so one bad number
cannot lose the outcome of the rest of the batch.

`find_sent` answers the one question a crash leaves open: did Twilio accept a
message whose answer (its sid) was never recorded? It reads Twilio's Messages
list for the recipient, so a send is only repeated when Twilio does not know it.
"""

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from math import ceil

from aiohttp import ClientConnectorError, ClientError
from rq.timeouts import BaseTimeoutException
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.rest import Client

from app.sending.channels.channels import CHANNELS, Channel
from app.sending.channels.errors import ERROR_EXPLANATIONS, classify_error
from app.sending.channels.http_client import PooledAsyncHttpClient
from app.sending.channels.messages import (
    FoundMessage,
    LookupResult,
    OutboundMessage,
    SenderSettings,
    SendResult,
    SentLookup,
)

logger = logging.getLogger(__name__)

# Twilio's Messages list, read newest first: this many per page, and at most this many pages per recipient.
LOOKUP_PAGE_SIZE = 50
LOOKUP_MAX_PAGES = 20


def get_sender(settings: SenderSettings) -> "TwilioSender | DryRunSender":
    """The sender these settings ask for: a dry run, or the real Twilio one."""
    return DryRunSender(settings) if settings.dry_run else TwilioSender(settings)


def _refused(message: OutboundMessage, reason: str) -> SendResult:
    return SendResult(key=message.key, ok=False, error_message=reason, transient=False)


def _check_message(message: OutboundMessage) -> str | None:
    """Why this message cannot be sent by any sender, or None when it looks sendable."""
    if message.channel not in CHANNELS:
        return f"Unknown channel {message.channel!r}: use one of {', '.join(sorted(CHANNELS))}."
    if not (message.to or "").strip():
        return "The recipient phone number is empty."
    if not (message.body or message.content_sid or message.media_url):
        return ERROR_EXPLANATIONS[21602]
    return None


class DryRunSender:
    """Pretends every message was sent: nothing leaves the machine and nothing is recorded here.

    With `dry_run_latency`, a batch takes as long as `concurrency` parallel
    calls of that latency would, which lets benchmarks run without Twilio.
    """

    def __init__(self, settings: SenderSettings):
        self.settings = settings

    def send_many(
        self, messages: Iterable[OutboundMessage], on_result: Callable[[SendResult], None] | None = None
    ) -> list[SendResult]:
        messages = list(messages)
        latency = self.settings.dry_run_latency
        if latency and messages:
            time.sleep(latency * ceil(len(messages) / self.settings.concurrency))
        results = [self._pretend(message) for message in messages]
        for result in results if on_result else ():
            on_result(result)
        return results

    def find_sent(self, lookups: Iterable[SentLookup]) -> list[LookupResult]:
        """A dry run sends nothing, so Twilio knows none of these messages."""
        return [LookupResult(key=lookup.key, ok=True) for lookup in lookups]

    @staticmethod
    def _pretend(message: OutboundMessage) -> SendResult:
        problem = _check_message(message)
        if problem:
            return _refused(message, problem)
        return SendResult(key=message.key, ok=True, sid="DRY" + uuid.uuid4().hex, status="sent")

    def close(self) -> None:
        """Nothing to release; here so both senders can be used the same way."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class TwilioSender:
    """Sends through the official twilio SDK, `settings.concurrency` calls in flight at once.

    Not for use inside a running event loop: `send_many` drives its own. Calls
    from several threads are serialised. A forked child builds a fresh loop and
    pool rather than sharing its parent's sockets.
    """

    def __init__(self, settings: SenderSettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None
        self._http: PooledAsyncHttpClient | None = None
        self._pid: int | None = None

    def __repr__(self) -> str:
        return f"<TwilioSender {self.settings!r}>"

    def send_many(
        self, messages: Iterable[OutboundMessage], on_result: Callable[[SendResult], None] | None = None
    ) -> list[SendResult]:
        """Send every message, concurrently; the results come back in input order.

        `on_result`, if given, is also called with each result as soon as it
        is known (from the thread running `send_many`), so a caller can
        record answers while the rest are still in flight.
        """
        messages = list(messages)
        return self._run(self._send_all(messages, on_result)) if messages else []

    def find_sent(self, lookups: Iterable[SentLookup]) -> list[LookupResult]:
        """Ask Twilio which of these messages it accepted; the results come back in input order.

        One list request (paged) per recipient and sender, `concurrency` at a
        time. Trouble reaching Twilio comes back as `ok=False` results, never
        as an exception.
        """
        lookups = list(lookups)
        return self._run(self._find_all(lookups)) if lookups else []

    def _run(self, coroutine):
        """Run `coroutine` to its end on this sender's event loop (one caller at a time)."""
        with self._lock:
            loop = self._event_loop()
            task = loop.create_task(coroutine)
            try:
                return loop.run_until_complete(task)
            except BaseException:
                # e.g. an RQ job timeout raised mid-batch: leave no half-run calls behind.
                task.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(task)
                raise

    def close(self) -> None:
        """Close the connection pool and the event loop; a later `send_many` opens new ones."""
        with self._lock:
            if self._loop is None:
                return
            if self._pid == os.getpid():
                if self._http is not None:
                    self._loop.run_until_complete(self._http.close())
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
                self._loop.close()
            self._loop = self._client = self._http = self._pid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None and self._pid != os.getpid():
            self._loop = self._client = self._http = None  # inherited across fork: not ours to close
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._pid = os.getpid()
        return self._loop

    def _twilio_client(self) -> Client:
        """The SDK client, built on first use inside our loop (aiohttp sessions belong to one loop)."""
        if self._client is None:
            settings = self.settings
            self._http = PooledAsyncHttpClient(
                pool_size=settings.concurrency, timeout=settings.timeout, base_url=settings.api_base_url
            )
            self._client = Client(settings.account_sid, settings.auth_token, http_client=self._http)
        return self._client

    async def _send_all(self, messages: list[OutboundMessage], on_result=None) -> list[SendResult]:
        if not (self.settings.account_sid and self.settings.auth_token):
            reason = "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set, so nothing can be sent"
            refused = [_refused(message, reason) for message in messages]
            for result in refused if on_result else ():
                on_result(result)
            return refused
        client = self._twilio_client()
        results: list[SendResult | None] = [None] * len(messages)
        pending = iter(enumerate(messages))

        async def work_through_pending():
            for index, message in pending:
                results[index] = await self._send_one(client, message)
                if on_result:
                    on_result(results[index])

        # A fixed pool of workers sharing one iterator: at most `concurrency` calls in flight.
        workers = min(self.settings.concurrency, len(messages))
        await asyncio.gather(*(work_through_pending() for _ in range(workers)))
        return results

    async def _send_one(self, client: Client, message: OutboundMessage) -> SendResult:
        problem = _check_message(message)
        if problem:
            return _refused(message, problem)
        channel: Channel = CHANNELS[message.channel]
        sender = channel.sender_of(self.settings, message.from_address)
        if sender is None:
            return _refused(message, channel.missing_sender_message())
        try:
            created = await client.messages.create_async(**channel.create_params(message, sender))
        except TwilioRestException as error:
            return _twilio_failure(message, error.status, error.code, _strip_prefix(error.msg))
        except TwilioServiceException as error:
            return _twilio_failure(message, error.status, error.code, error.detail or error.title)
        except TwilioException as error:
            return _refused(message, f"The twilio library refused the message: {error}")
        except ClientConnectorError as error:
            return _network_failure(message, f"Could not connect to Twilio ({error}); the message was not sent.")
        except TimeoutError:
            return _network_failure(
                message,
                f"Twilio did not answer within {self.settings.timeout:g} s; the message may or may not have been sent.",
                ambiguous=True,
            )
        except (ClientError, OSError) as error:
            return _network_failure(
                message,
                f"Network error talking to Twilio ({type(error).__name__}: {error}); "
                "the message may or may not have been sent.",
                ambiguous=True,
            )
        except BaseTimeoutException:
            raise  # RQ's job timeout, wherever it lands: the job stops and recovery looks its messages up
        except Exception as error:
            logger.exception("unexpected error sending message %s", message.key)
            return _refused(message, f"Unexpected error while sending ({type(error).__name__}: {error}).")
        return SendResult(key=message.key, ok=True, sid=created.sid, status=created.status)

    async def _find_all(self, lookups: list[SentLookup]) -> list[LookupResult]:
        if not (self.settings.account_sid and self.settings.auth_token):
            reason = "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set, so Twilio cannot be asked"
            return [LookupResult(key=lookup.key, ok=False, error_message=reason) for lookup in lookups]
        client = self._twilio_client()
        answers: dict[str, LookupResult] = {}
        # Lookups for one recipient and sender share one list request.
        queries: dict[tuple[str, tuple], list[SentLookup]] = {}
        for lookup in lookups:
            channel = CHANNELS.get(lookup.channel)
            sender = channel.sender_of(self.settings, lookup.from_address) if channel else None
            if sender is None:
                reason = channel.missing_sender_message() if channel else f"Unknown channel {lookup.channel!r}."
                answers[lookup.key] = LookupResult(key=lookup.key, ok=False, error_message=reason)
                continue
            queries.setdefault((channel.address(lookup.to), tuple(sorted(sender.items()))), []).append(lookup)
        pending = iter(queries.items())

        async def work_through_pending():
            for (to, sender), group in pending:
                for answer in await self._find_for_recipient(client, to, dict(sender), group):
                    answers[answer.key] = answer

        workers = min(self.settings.concurrency, len(queries))
        await asyncio.gather(*(work_through_pending() for _ in range(workers)))
        return [answers[lookup.key] for lookup in lookups]

    async def _find_for_recipient(
        self, client: Client, to: str, sender: dict, lookups: list[SentLookup]
    ) -> list[LookupResult]:
        """Read the recipient's messages back to the earliest `since`, then match each lookup against them.

        Twilio's `DateSent` filter is not used: a message still waiting in
        Twilio's queue has no `date_sent` yet, and it is exactly one we must find.
        """
        since = min(lookup.since for lookup in lookups)
        try:
            records = await self._recent_messages(client, to, sender.get("from_"), since)
        except BaseTimeoutException:
            raise
        except Exception as error:  # network, 5xx, a page that does not parse: nothing is known
            reason = _lookup_failure(error, self.settings.timeout)
            return [LookupResult(key=lookup.key, ok=False, error_message=reason) for lookup in lookups]
        records = [record for record in reversed(records) if record.date_created is not None]
        records.sort(key=lambda record: record.date_created)  # oldest first (stable: arrival order within a second)
        return [
            LookupResult(
                key=lookup.key,
                ok=True,
                found=tuple(
                    FoundMessage(record.sid, record.date_created, str(record.status or ""), record.error_code)
                    for record in records
                    if _matches(record, lookup, sender)
                ),
            )
            for lookup in lookups
        ]

    async def _recent_messages(self, client: Client, to: str, from_: str | None, since) -> list:
        """The messages to `to` (from `from_` when known), newest first, until a page is wholly older than `since`."""
        filters = {"to": to, "page_size": LOOKUP_PAGE_SIZE}
        if from_:
            filters["from_"] = from_
        page = await client.messages.page_async(**filters)
        records = []
        for _ in range(LOOKUP_MAX_PAGES):
            batch = list(page)
            records += batch
            recent = [record for record in batch if record.date_created is None or record.date_created >= since]
            if not recent or page.next_page_url is None:
                return records
            page = await page.next_page_async()
        raise LookupError(
            f"Twilio lists more than {LOOKUP_PAGE_SIZE * LOOKUP_MAX_PAGES} messages to {to} "
            f"since {since:%Y-%m-%d %H:%M}"
        )


def _matches(record, lookup: SentLookup, sender: dict) -> bool:
    """Is this Twilio Message resource the message `lookup` describes, sent by `sender`?"""
    if not str(record.direction or "").startswith("outbound"):
        return False
    if not lookup.since <= record.date_created <= lookup.until:
        return False
    if "messaging_service_sid" in sender:
        if record.messaging_service_sid != sender["messaging_service_sid"]:
            return False
    elif record.from_ != sender.get("from_"):
        return False
    return bool(lookup.content_sid) or (record.body or "") == (lookup.body or "")


def _lookup_failure(error: Exception, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"Twilio did not answer the lookup within {timeout:g} s."
    if isinstance(error, TwilioRestException):
        return f"Twilio refused the lookup (HTTP {error.status}, code {error.code}: {error.msg})."
    if isinstance(error, TwilioException) and len(error.args) > 1:
        response = error.args[1]  # the SDK's "Unable to fetch page" carries the response
        return f"Twilio could not list messages (HTTP {getattr(response, 'status_code', '?')})."
    return f"Could not ask Twilio ({type(error).__name__}: {error})."


def _strip_prefix(twilio_message: str) -> str:
    return twilio_message.removeprefix("Unable to create record: ")


def _twilio_failure(message: OutboundMessage, http_status: int, code, detail: str | None) -> SendResult:
    transient, explanation = classify_error(http_status, code)
    error_code = code if isinstance(code, int) and code >= 1000 else None
    if detail and error_code is not None:
        explanation = f"{explanation} (Twilio {error_code}: {detail})"
    elif detail:
        explanation = f"{explanation} (Twilio: {detail})"
    return SendResult(
        key=message.key,
        ok=False,
        error_code=error_code,
        error_message=explanation,
        transient=transient,
        http_status=http_status,
    )


def _network_failure(message: OutboundMessage, reason: str, ambiguous: bool = False) -> SendResult:
    return SendResult(key=message.key, ok=False, error_message=reason, transient=True, ambiguous=ambiguous)
