"""What the tests that start a real Celery worker share: stopping it, and waiting for its
database sessions to end so pytest-django can drop the test database."""
from __future__ import annotations

import subprocess
import time

from django.db import connection


def stop(process: subprocess.Popen, seconds: float = 30) -> None:
    """Stop a worker: a warm shutdown first, then for sure."""
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_sessions_to_close(seconds: float = 15) -> None:
    """PostgreSQL ends a stopped worker's sessions a moment later; until then the test
    database could not be dropped."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.1)
