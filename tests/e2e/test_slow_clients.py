"""Slow clients against the real gunicorn, run with the project's gunicorn.conf.py.

Eight connections send their headers or their body a byte at a time; /health/ must still
answer at once. (With the old settings, three sync workers, three such clients held every
worker and /health/ did not answer at all.) The server runs on SQLite and the filesystem
broker in a folder of the test, and is always killed at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import unavailable

REPO = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
START_SECONDS = 90
ANSWER_SECONDS = 3.0  # /health/ under slow clients must answer within this


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_health(address: str, timeout: float) -> float:
    """Seconds /health/ took to answer (any status: 503 only means no broker or model)."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://{address}/health/", timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as answer:
        answer.read()
    return time.monotonic() - started


@contextmanager
def gunicorn(tmp_path: Path, *args: str) -> Iterator[str]:
    """`gunicorn genreweb.wsgi -c gunicorn.conf.py [args]` on a free port; its address,
    once every worker answers quickly."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT", "STATIC_ROOT")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="genreweb.settings",
        GENREWEB_BIND=f"127.0.0.1:{port}",
        GENREWEB_DATA_DIR=str(tmp_path / "data"),
    )
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(GUNICORN), "genreweb.wsgi", "-c", "gunicorn.conf.py", *args],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    address = f"127.0.0.1:{port}"
    try:
        warm_up(address, process, log)
        yield address
    finally:
        stop(process)


def warm_up(address: str, process: subprocess.Popen, log: Path) -> None:
    """Until four requests at once all answer within a second (each worker has loaded
    the URLs and views its first request imports)."""
    deadline = time.monotonic() + START_SECONDS
    with ThreadPoolExecutor(4) as pool:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited at start:\n{log.read_text(errors='replace')}")
            try:
                if max(pool.map(lambda _: get_health(address, 30), range(4))) < 1.0:
                    return
            except OSError:
                time.sleep(0.3)
    pytest.fail(
        f"gunicorn did not answer in {START_SECONDS} s:\n{log.read_text(errors='replace')[-4000:]}"
    )


def stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue


class SlowClient(threading.Thread):
    """Opens a connection and sends `head` (at once), then `trickle` a byte at a time."""

    def __init__(
        self,
        address: str,
        head: bytes,
        trickle: bytes,
        done: threading.Event,
        interval: float = 0.25,
    ) -> None:
        super().__init__(daemon=True)
        self.host, port = address.split(":")
        self.port = int(port)
        self.head, self.trickle, self.done, self.interval = head, trickle, done, interval
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with socket.create_connection((self.host, self.port), timeout=5) as sock:
                sock.sendall(self.head)
                self.connected.set()
                for byte in self.trickle:
                    if self.done.wait(self.interval):
                        return
                    sock.sendall(bytes([byte]))
        except OSError:
            self.connected.set()  # dropped by the server: it is not holding a thread either


def slow_clients(address: str, done: threading.Event, count: int = 8) -> list[SlowClient]:
    """Half send their request headers byte by byte, half their body (to the token
    endpoint, which reads it: no CSRF check answers before the body is in)."""
    headers = (
        f"POST /api/token/ HTTP/1.1\r\nHost: {address}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 4000\r\nUser-Agent: slow-client-test\r\n\r\n"
    ).encode()
    clients = []
    for n in range(count):
        if n % 2:
            clients.append(SlowClient(address, headers, b"username=x&" + b"a" * 3989, done))
        else:
            clients.append(SlowClient(address, headers[:1], headers[1:], done))
    for client in clients:
        client.start()
    for client in clients:
        client.connected.wait(5)
    return clients


def health_under_slow_clients(tmp_path: Path, *gunicorn_args: str, count: int = 8) -> float:
    """Seconds /health/ took to answer while `count` slow clients were connected (the
    timeout, 10 s, where it did not answer at all)."""
    with gunicorn(tmp_path, *gunicorn_args) as address:
        done = threading.Event()
        clients = slow_clients(address, done, count)
        try:
            time.sleep(1.0)  # each has sent its first bytes: a thread or a worker is its
            try:
                return get_health(address, timeout=10)
            except OSError:
                return 10.0
        finally:
            done.set()
            for client in clients:
                client.join(5)


def test_health_answers_while_slow_clients_are_connected(tmp_path):
    if not GUNICORN.exists():
        unavailable(f"{GUNICORN} is missing: pip install -r requirements.txt")
    seconds = health_under_slow_clients(tmp_path)
    assert seconds < ANSWER_SECONDS, f"/health/ took {seconds:.1f} s under 8 slow clients"


def run_tool(name: str, *args: str, **env: str) -> str:
    """The output of Debian's `name` run on the repository's files (make test installs it)."""
    binary = shutil.which(name)
    if binary is None:
        unavailable(f"{name} (Debian's package) is not installed; make test installs it")
    result = subprocess.run(
        [binary, *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_compose_puts_caddy_in_front_of_gunicorns_gthread_workers():
    config = run_tool("docker-compose", "-f", "docker-compose.yml", "config")
    services = re.split(r"^  (?=\S)", config, flags=re.MULTILINE)  # one per service
    web = next(s for s in services if s.startswith("web:"))
    caddy = next(s for s in services if s.startswith("caddy:"))
    assert "gunicorn.conf.py" in web and "published" not in web  # reachable only via Caddy
    assert re.search(r"GENREWEB_BEHIND_PROXY: ['\"]true", web)
    assert "published: 8000" in caddy and "/etc/caddy/Caddyfile" in caddy
    settings = (REPO / "gunicorn.conf.py").read_text()
    assert 'worker_class = "gthread"' in settings and "threads = " in settings


@pytest.mark.parametrize("site", [":80", "music.example.org"])
def test_the_caddyfile_is_valid_for_http_and_for_a_domain(site):
    adapted = run_tool("caddy", "adapt", "--config", "Caddyfile", GENREWEB_SITE_ADDRESS=site)
    assert '"dial":"web:8000"' in adapted and '"read_header_timeout":10000000000' in adapted
    assert ('"host":["music.example.org"]' in adapted) == (site != ":80")
