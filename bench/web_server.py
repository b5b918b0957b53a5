"""The web tier for benchmarks that need Twilio's calls back in: gunicorn serving `wsgi:app` on a free port.

Status callbacks and inbound webhooks are signed with the fake's auth token
against `PUBLIC_BASE_URL`, which is this server's own address.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def web_process(env: dict, workers: int = 2, threads: int | None = None):
    """gunicorn with the app (`env`: DATABASE_URL, REDIS_URL, TWILIO_*, ...); yields its base URL.

    As the Procfile's `web`: 2 workers, `WEB_THREADS` (default 32) threads each.
    """
    threads = threads or int(os.environ.get("WEB_THREADS", 32))
    port = free_port()
    log = tempfile.NamedTemporaryFile("w", prefix="bench-web-", suffix=".log", delete=False)
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        "-w",
        str(workers),
        "--threads",
        str(threads),
        "-b",
        f"127.0.0.1:{port}",
        "wsgi:app",
    ]
    base_url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, **env, "PUBLIC_BASE_URL": base_url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the web process did not start; see {log.name}") from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        os.unlink(log.name)


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"
