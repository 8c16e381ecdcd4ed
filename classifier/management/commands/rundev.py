"""`manage.py rundev`: the web server, a Celery worker and its beat scheduler in one command.

For running Genreweb on the embedded defaults (SQLite, filesystem broker) or against
PostgreSQL and Redis; production runs gunicorn and `celery worker` separately (see
docker-compose.yml).

The worker and beat are two children that rundev watches: one that dies is started again
(without beat, the sweep that re-queues lost tracks would stop), and both end with rundev
however it ends: a clean stop on Ctrl-C or SIGTERM, and on Linux PR_SET_PDEATHSIG should
rundev itself be killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from genreweb.celery import ensure_broker_folders

STOP_SECONDS = 30
WATCH_SECONDS = 0.5
# A child that dies sooner than this after its start is started again after a pause that
# doubles with each such death (1, 2, 4 ... MAX_PAUSE s), so one that cannot start never
# spins; one that ran longer is started again at once.
STEADY_SECONDS = 30
MAX_PAUSE = 30
PR_SET_PDEATHSIG = 1


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and its beat together (Ctrl-C stops all)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "addrport",
            nargs="?",
            default="127.0.0.1:8000",
            help="where the web server listens (default 127.0.0.1:8000)",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="analyses run at once by the worker (default GENREWEB_WORKER_CONCURRENCY: "
            "one per core)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        ensure_broker_folders()
        if options["concurrency"] is not None:  # the worker's settings read it, threads too
            os.environ["GENREWEB_WORKER_CONCURRENCY"] = str(options["concurrency"])
        # SIGTERM (a process manager, `kill`) stops them all, as Ctrl-C does.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        children = Supervisor(
            {"worker": worker_command(), "beat": beat_command()},
            report=lambda line: self.stderr.write(self.style.WARNING(line)),
        )
        children.start()
        host = options["addrport"]
        self.stdout.write(
            self.style.SUCCESS(
                f"Genreweb: http://{host}/ (worker pid {children.pid('worker')}, beat pid "
                f"{children.pid('beat')}). First time? Sign up at http://{host}/accounts/signup/; "
                "for the admin run `manage.py createsuperuser`."
            )
        )
        try:
            call_command("runserver", host, use_reloader=False)
        finally:
            children.stop()


def worker_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "genreweb",
        "worker",
        "--loglevel",
        "INFO",
        "--pool",
        "prefork",
    ]


def beat_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "genreweb",
        "beat",
        "--schedule",
        settings.CELERY_BEAT_SCHEDULE_FILENAME,
        "--loglevel",
        "INFO",
    ]


class Child:
    """One supervised command and its current process."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.command = command
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self.quick_deaths = 0  # in a row
        self.restart_at: float | None = None  # set while dead

    def spawn(self) -> None:
        # Its own process group, so that stopping it can reach its pool's processes.
        self.process = subprocess.Popen(
            self.command, start_new_session=True, preexec_fn=die_with_parent()
        )
        self.started = time.monotonic()
        self.restart_at = None


class Supervisor:
    """Starts the children, starts again any that dies, and stops them all."""

    def __init__(
        self, commands: dict[str, list[str]], report: Callable[[str], None] = print
    ) -> None:
        self.children = [Child(name, command) for name, command in commands.items()]
        self.report = report
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="rundev-watcher", daemon=True)

    def start(self) -> None:
        for child in self.children:
            child.spawn()
        self._watcher.start()

    def pid(self, name: str) -> int:
        [child] = [child for child in self.children if child.name == name]
        assert child.process is not None
        return child.process.pid

    def _watch(self) -> None:
        # The restarted children die with this thread (PR_SET_PDEATHSIG follows the thread
        # that forked them), which lives until stop().
        while not self._stopping.wait(WATCH_SECONDS):
            for child in self.children:
                self._check(child)

    def _check(self, child: Child) -> None:
        assert child.process is not None
        code = child.process.poll()
        if code is None:
            return
        now = time.monotonic()
        if child.restart_at is None:  # found dead just now
            end_group(child.process)  # a dead worker's pool, left behind
            quick = now - child.started < STEADY_SECONDS
            child.quick_deaths = child.quick_deaths + 1 if quick else 0
            pause = min(MAX_PAUSE, 2 ** (child.quick_deaths - 1)) if quick else 0
            child.restart_at = now + pause
            self.report(
                f"rundev: the {child.name} (pid {child.process.pid}) exited with "
                f"{code}; starting it again in {pause} s"
            )
        if now >= child.restart_at:
            child.spawn()
            self.report(f"rundev: the {child.name} runs again as pid {child.process.pid}")

    def stop(self) -> None:
        """Ask every child for a warm shutdown (the worker finishes its task), then insist;
        either way no process of their groups outlives this call."""
        self._stopping.set()
        if self._watcher.is_alive():
            self._watcher.join()
        processes = [child.process for child in self.children if child.process is not None]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            end_group(process)


def end_group(process: subprocess.Popen) -> None:
    """Kill what is left of a child's process group (stragglers of a worker's pool)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn by which the child gets SIGTERM when rundev dies, even by SIGKILL
    (Linux's PR_SET_PDEATHSIG); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not after
    parent, sigterm = os.getpid(), int(signal.SIGTERM)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sigterm)
        if os.getppid() != parent:  # rundev died before the line above took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec
