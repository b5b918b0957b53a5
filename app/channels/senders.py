"""Send batches of messages through Twilio, many at once, behind a small synchronous API.

Twilio takes 300-500 ms per call, so one worker reaches a useful rate only by
keeping many calls in flight: `TwilioSender` runs `concurrency` coroutines on
twilio's aiohttp client. Its event loop and connection pool live as long as the
sender, so an RQ job can call `send_many` again and again without reconnecting.
Failures come back as `SendResult`s, never as exceptions, so one bad number
cannot lose the outcome of the rest of the batch.
"""

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from math import ceil

from aiohttp import ClientConnectorError, ClientError
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.rest import Client

from .channels import CHANNELS, Channel
from .errors import ERROR_EXPLANATIONS, classify_error
from .http_client import PooledAsyncHttpClient
from .messages import OutboundMessage, SenderSettings, SendResult

logger = logging.getLogger(__name__)


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

    def send_many(self, messages: Iterable[OutboundMessage]) -> list[SendResult]:
        messages = list(messages)
        latency = self.settings.dry_run_latency
        if latency and messages:
            time.sleep(latency * ceil(len(messages) / self.settings.concurrency))
        return [self._pretend(message) for message in messages]

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

    def send_many(self, messages: Iterable[OutboundMessage]) -> list[SendResult]:
        """Send every message, concurrently; the results come back in input order."""
        messages = list(messages)
        if not messages:
            return []
        with self._lock:
            loop = self._event_loop()
            task = loop.create_task(self._send_all(messages))
            try:
                return loop.run_until_complete(task)
            except BaseException:
                # e.g. an RQ job timeout raised mid-batch: leave no half-run calls behind.
                task.cancel()
                try:
                    loop.run_until_complete(task)
                except BaseException:
                    pass
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

    async def _send_all(self, messages: list[OutboundMessage]) -> list[SendResult]:
        if not (self.settings.account_sid and self.settings.auth_token):
            reason = "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set, so nothing can be sent"
            return [_refused(message, reason) for message in messages]
        client = self._twilio_client()
        results: list[SendResult | None] = [None] * len(messages)
        pending = iter(enumerate(messages))

        async def work_through_pending():
            for index, message in pending:
                results[index] = await self._send_one(client, message)

        # A fixed pool of workers sharing one iterator: at most `concurrency` calls in flight.
        workers = min(self.settings.concurrency, len(messages))
        await asyncio.gather(*(work_through_pending() for _ in range(workers)))
        return results

    async def _send_one(self, client: Client, message: OutboundMessage) -> SendResult:
        problem = _check_message(message)
        if problem:
            return _refused(message, problem)
        channel: Channel = CHANNELS[message.channel]
        sender = channel.sender(self.settings)
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
                f"Twilio did not answer within {self.settings.timeout:g} s; "
                "the message may or may not have been sent.",
            )
        except (ClientError, OSError) as error:
            return _network_failure(
                message,
                f"Network error talking to Twilio ({type(error).__name__}: {error}); "
                "the message may or may not have been sent.",
            )
        except Exception as error:
            logger.exception("unexpected error sending message %s", message.key)
            return _refused(message, f"Unexpected error while sending ({type(error).__name__}: {error}).")
        return SendResult(key=message.key, ok=True, sid=created.sid, status=created.status)


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


def _network_failure(message: OutboundMessage, reason: str) -> SendResult:
    return SendResult(key=message.key, ok=False, error_message=reason, transient=True)
