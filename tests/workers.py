"""Real Celery workers for the end-to-end tests: starting one, waiting on it, stopping it.

`tests/e2e/conftest.py` makes these the `broker` and `start_worker` fixtures; `wait_for` is
the suite's one wait for something another process does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import pytest
from django.db import connection

from tests.conftest import REPO, WORKER_REDIS_URL

READY_SECONDS = 180  # for a cold worker to load Django and the CNN
LOG_TAIL = 4000  # characters of a worker's log shown when a test gives up on it

T = TypeVar("T")


class Worker:
    """A `celery -A genreweb worker` subprocess and the file its output goes to."""

    def __init__(self, process: subprocess.Popen, log: Path, session_name: str) -> None:
        self.process = process
        self.log = log
        self.session_name = session_name  # of its database sessions

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def children(self) -> list[int]:
        """The pool's child processes (prefork), from /proc."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def wait_for(
    predicate: Callable[[], T],
    seconds: float,
    what: str,
    log: Worker | Path | None = None,
    every: float = 0.2,
) -> T:
    """Poll until `predicate()` is truthy and return its value (a wait, not a timing
    assertion); after `seconds`, fail with `what` and the end of `log` (a worker or a file)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"gave up after {seconds:.0f} s waiting for {what}{log_tail(log)}")


def log_tail(log: Worker | Path | None) -> str:
    if log is None:
        return ""
    text = log.output() if isinstance(log, Worker) else Path(log).read_text(errors="replace")
    return f"\n--- {getattr(log, 'log', log)} ---\n{text[-LOG_TAIL:]}"


def database_url() -> str:
    """The URL of the database these tests run on (pytest-django's test database)."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def launch(name: str, folder: Path, pool: str, env: Mapping[str, str]) -> Worker:
    """Start a worker on WORKER_REDIS_URL and the test database, with the media and model
    folders of this process's settings and `env` on top; its log and data go in `folder`."""
    from django.conf import settings

    log = folder / f"{name}.log"

    full = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "genreweb.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": WORKER_REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "GENREWEB_MODEL_DIR": str(settings.GENREWEB_MODEL_DIR),
        "GENREWEB_DATA_DIR": str(folder / f"{name}-data"),
        "PYTHONUNBUFFERED": "1",
        "PGAPPNAME": session_name(name),
        **env,
    }  # libpq names the worker's sessions
    concurrency = ["--concurrency", "1"] if pool == "prefork" else []
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "genreweb",
        "worker",
        "--pool",
        pool,
        *concurrency,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}-{uuid.uuid4().hex[:8]}@%h",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=REPO, env=full, stdout=sink, stderr=subprocess.STDOUT
        )
    return Worker(process, log, session_name(name))


def session_name(name: str) -> str:
    """The application_name of a worker's database sessions (pg_stat_activity)."""
    return f"genreweb-test-worker-{name}"


def wait_until_ready(worker: Worker, seconds: float = READY_SECONDS) -> None:
    wait_for(
        lambda: "ready." in worker.output() or worker.process.poll() is not None,
        seconds,
        "the Celery worker to start",
        worker,
    )
    if worker.process.poll() is not None:
        pytest.fail(f"the Celery worker exited at start:{log_tail(worker)}")


def stop(process: subprocess.Popen, seconds: float = 30) -> None:
    """Stop a worker: a warm shutdown first, then for sure."""
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def forget_broker_connections() -> None:
    """Drop this process's pooled broker connections, so the next send opens fresh ones
    to the broker URL of the moment.

    Celery keeps them in pools made on first use, and kombu registers producer pools per
    connection: all are closed and forgotten.
    """
    from kombu import pools

    from genreweb.celery import app

    pools.reset()
    app._after_fork()  # resets the app's pools, as after a fork


def wait_for_sessions_to_close(workers: list[Worker], seconds: float = 15) -> None:
    """PostgreSQL ends a stopped worker's sessions a moment later; until then the test
    database could not be dropped."""
    names = [worker.session_name for worker in workers]
    deadline = time.monotonic() + seconds
    while names and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                "current_database() AND application_name = ANY(%s)",
                [names],
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.1)
