"""`manage.py rundev`: the web server and a Celery worker (with its beat) in one command.

For running Genreweb on the embedded defaults (SQLite, filesystem broker) or against
PostgreSQL and Redis; production runs gunicorn and `celery worker` separately (see
docker-compose.yml).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from genreweb.celery import ensure_broker_folders

STOP_SECONDS = 30


class Command(BaseCommand):
    help = "Run the web server and a Celery worker together (Ctrl-C stops both)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000",
                            help="where the web server listens (default 127.0.0.1:8000)")
        parser.add_argument("--concurrency", type=int, default=1,
                            help="analyses run at once by the worker (default 1)")

    def handle(self, *args: Any, **options: Any) -> None:
        ensure_broker_folders()
        # SIGTERM (a process manager, `kill`) stops both, as Ctrl-C does.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        # Its own process group, so that stopping it can reach its pool and beat processes.
        worker = subprocess.Popen(worker_command(options["concurrency"]), start_new_session=True)
        host = options["addrport"]
        self.stdout.write(self.style.SUCCESS(
            f"Genreweb: http://{host}/ (worker pid {worker.pid}). First time? Sign up at "
            f"http://{host}/accounts/signup/; for the admin run `manage.py createsuperuser`."))
        try:
            call_command("runserver", host, use_reloader=False)
        finally:
            stop(worker)


def worker_command(concurrency: int) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "genreweb", "worker", "--beat",
            "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME, "--loglevel", "INFO",
            "--pool", "prefork", "--concurrency", str(concurrency)]


def stop(worker: subprocess.Popen) -> None:
    """Ask the worker for a warm shutdown (it finishes its task), then insist; either way
    no process of its group outlives this command."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)  # stragglers of the pool, if any
