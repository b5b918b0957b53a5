"""How fast and how cheaply one process sends through TwilioSender. Prints figures; asserts nothing.

The fake Twilio runs in a separate process, so the CPU figure is the
sender's alone (twilio SDK + aiohttp + our adapter).

    .venv/bin/python -m bench.bench_sender [--sizes 1000 5000] [--latencies 0 0.3] [--concurrency 100]
"""

import argparse
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from app.sending.channels import OutboundMessage, SenderSettings, get_sender
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def fake_twilio_process(latency: float, callbacks: bool = False):
    """Run `python -m tests.fake_twilio` on a free port (posting status callbacks if asked); yield its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_twilio", "--port", str(port), "--latency", str(latency)]
        + ([] if callbacks else ["--no-callbacks"]),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the fake Twilio server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def messages(count: int) -> list[OutboundMessage]:
    return [
        OutboundMessage(
            key=str(number),
            to=f"+1555{number:07d}",
            channel="sms",
            body=f"Hello contact {number}, your order has shipped.",
            status_callback="https://app.example.com/webhooks/twilio/status",
        )
        for number in range(count)
    ]


def measure(sender, count: int) -> tuple[float, float, int]:
    batch = messages(count)
    cpu, wall = time.process_time(), time.perf_counter()
    results = sender.send_many(batch)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return wall, cpu, sum(result.ok for result in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 0.3])
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()

    print(f"concurrency {args.concurrency}; fake Twilio in its own process; CPU is the sender process only")
    print(f"{'latency':>8} {'messages':>9} {'ok':>6} {'wall s':>8} {'msg/s':>8} {'CPU ms/msg':>11}")
    for latency in args.latencies:
        with fake_twilio_process(latency) as base_url:
            settings = SenderSettings(
                ACCOUNT_SID, AUTH_TOKEN, sms_from=SMS_FROM, api_base_url=base_url, concurrency=args.concurrency
            )
            with get_sender(settings) as sender:
                measure(sender, args.concurrency)  # warm up: connection pool and SDK objects
                for count in args.sizes:
                    wall, cpu, ok = measure(sender, count)
                    print(
                        f"{latency * 1000:>6.0f}ms {count:>9} {ok:>6} {wall:>8.2f} {count / wall:>8.0f}"
                        f" {cpu * 1000 / count:>11.2f}"
                    )


if __name__ == "__main__":
    main()
