"""`manage.py rundev` supervises its worker and beat: a killed one comes back, a killed
worker leaves no orphan beat (nor pool process) behind, and nothing outlives rundev, even
when rundev itself is killed. On the embedded defaults (SQLite, filesystem broker)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.workers import wait_for

pytestmark = pytest.mark.worker
SERVER_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "MEDIA_ROOT",
    "STATIC_ROOT",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)
SWEEP_EVERY = 2
SWEEP_SENT = "Sending due task requeue-stale-tracks"
STARTUP_SECONDS = 240  # a cold worker loads Django and the CNN
RESTART_SECONDS = 30  # the most a restart may take (found within 0.5 s, started in 1 s)


@dataclass
class Proc:
    pid: int
    ppid: int
    argv: list[str]


class Rundev:
    def __init__(self, process: subprocess.Popen, log: Path, data_dir: Path) -> None:
        self.process, self.log, self.data_dir = process, log, data_dir

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ours(self) -> dict[int, Proc]:
        """Every live process started for this data folder (rundev and all below it, and
        any orphan it left), from /proc."""
        mark = f"GENREWEB_DATA_DIR={self.data_dir}".encode()
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if mark not in (entry / "environ").read_bytes().split(b"\0"):
                    continue
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if state != "Z":
                found[int(entry.name)] = Proc(int(entry.name), int(ppid), argv)
        return found

    def children(self, kind: str) -> list[int]:
        """rundev's live children running `celery ... <kind>` (worker or beat)."""
        return [
            p.pid for p in self.ours().values() if p.ppid == self.process.pid and kind in p.argv
        ]

    def orphans(self) -> list[Proc]:
        """Our processes that do not descend from rundev."""
        table = self.ours()

        def descends(proc: Proc) -> bool:
            while proc.ppid != self.process.pid:
                if proc.ppid not in table:
                    return False
                proc = table[proc.ppid]
            return True

        return [p for p in table.values() if p.pid != self.process.pid and not descends(p)]

    def one(self, kind: str, other_than: int | None = None) -> int:
        """Wait for exactly one live `kind` child of rundev (and, with `other_than`, a new one)."""

        def found() -> bool:
            pids = self.children(kind)
            return len(pids) == 1 and pids[0] != other_than

        wait_for(found, RESTART_SECONDS, f"rundev's {kind} ({self.output()[-3000:]})")
        [pid] = self.children(kind)
        return pid

    def count(self, text: str) -> int:
        return self.output().count(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> dict[str, str]:
    """rundev's environment, its data folder migrated once for the module."""
    data_dir = tmp_path_factory.mktemp("rundev-data")
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    env.update(GENREWEB_DATA_DIR=str(data_dir), GENREWEB_SWEEP_EVERY=str(SWEEP_EVERY))
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return env


@pytest.fixture
def rundev(environment, tmp_path) -> Iterator[Rundev]:
    log = tmp_path / "rundev.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "rundev", f"127.0.0.1:{free_port()}"],
            cwd=REPO,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Rundev(process, log, Path(environment["GENREWEB_DATA_DIR"]))
    try:
        wait_for(
            lambda: (
                (server.count(" ready.") == 1 and server.count(SWEEP_SENT) >= 1)
                or process.poll() is not None
            ),
            STARTUP_SECONDS,
            "rundev's worker and beat to start",
        )
        assert process.poll() is None, server.output()
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        try:
            wait_for(lambda: not server.ours(), 60, "rundev's processes to end")
        finally:
            for pid in server.ours():  # whatever a failure left, so that it ends here
                os.kill(pid, signal.SIGKILL)


def test_a_killed_beat_is_started_again_and_sweeps(rundev):
    beat = rundev.one("beat")
    sent = rundev.count(SWEEP_SENT)
    os.kill(beat, signal.SIGKILL)
    killed_at = time.monotonic()
    rundev.one("beat", other_than=beat)
    back_after = time.monotonic() - killed_at
    wait_for(
        lambda: rundev.count(SWEEP_SENT) > sent, RESTART_SECONDS, "the new beat to send a sweep"
    )
    print(
        f"\nbeat killed -> beat back: {back_after:.1f} s, sweeping again: "
        f"{time.monotonic() - killed_at:.1f} s"
    )
    assert re.search(r"the beat \(pid \d+\) exited", rundev.output())
    assert rundev.orphans() == []


def test_a_killed_worker_is_started_again_and_leaves_no_orphan(rundev):
    for round_ in range(2):
        worker = rundev.one("worker")
        ready = rundev.count(" ready.")
        os.kill(worker, signal.SIGKILL)  # its main process; its pool child is left behind
        rundev.one("worker", other_than=worker)
        wait_for(lambda r=ready: rundev.count(" ready.") > r, 120, "the new worker to be ready")
        assert rundev.orphans() == [], f"round {round_}: {rundev.orphans()}"
    assert len(rundev.children("beat")) == 1
    # One beat, one sweep per period: not one per orphan.
    sent, started = rundev.count(SWEEP_SENT), time.monotonic()
    time.sleep(5 * SWEEP_EVERY)
    sweeps = rundev.count(SWEEP_SENT) - sent
    print(
        f"\nsweeps sent in {time.monotonic() - started:.0f} s: {sweeps} "
        f"(one beat every {SWEEP_EVERY} s)"
    )
    assert 1 <= sweeps <= 6
    assert rundev.orphans() == []


def test_nothing_outlives_a_killed_rundev(rundev):
    children = [pid for pid, proc in rundev.ours().items() if pid != rundev.process.pid]
    assert len(children) >= 3  # worker, its pool child, beat
    rundev.process.kill()
    rundev.process.wait()
    wait_for(lambda: not rundev.ours(), 60, "rundev's children to end with it")
