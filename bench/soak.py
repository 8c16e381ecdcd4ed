"""Soak: many good and hostile files through the real Celery worker, with random kills.

Files of every kind the decoder has met (good files in seven formats, 7.1 audio, WAV headers
no decoder takes, junk after the audio, files cut short, files that are not audio, tag bombs)
are stored as one user's tracks on PostgreSQL and queued on Redis, as intake and a library scan
do; the hostile ones reach the worker because the soak skips the upload check. A prefork worker
with its embedded beat (the sweep that queues lost tracks again, the temporary-file sweep)
analyses them while this script kills, at random, either one pool child or the whole worker
(restarted at once). At the end every track must be done, or failed with a readable message;
none lost, none stored twice, no temporary file left; the worker's memory is sampled all along.

    python bench/soak.py --files 1000 --kills 20

It creates (and migrates) the database of --database, flushes the Redis database of --broker,
and works in a temporary folder. The last line reads
`files=<n> kills=<n> crashes=<n> hangs=<n> lost=<n> doubled=<n> temp_left=<n> peak_rss_mb=<x>`.
Exit status 1 when any of lost, doubled, unexplained failures, crashes or temp_left is not 0.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HEARTBEAT_TIMEOUT = 6  # seconds: a dead claim is found within two of these
SWEEP_EVERY = 2
TASK_TIME_LIMIT = 120  # a track that takes longer counts as a hang
KINDS = {  # kind -> share of the files
    "good": 0.55,
    "junk_tail": 0.07,
    "surround_7_1": 0.05,
    "impossible_wav": 0.05,
    "cut_short": 0.07,
    "not_audio": 0.07,
    "id3_frames_bomb": 0.07,
    "id3_inflating_bomb": 0.07,
}
GOOD_FORMATS = ("mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff")


def main() -> int:
    args = parse_args()
    folder = Path(tempfile.mkdtemp(prefix="genreweb-soak-"))
    configure(args, folder)
    import django

    django.setup()
    prepare_services(args)
    files = make_files(folder / "source", args.files, random.Random(args.seed))
    track_ids = store_and_queue(files)
    print(f"{len(track_ids)} tracks queued: {dict(Counter(kind for kind, _ in files))}")
    soak = Soak(folder, args, random.Random(args.seed + 1))
    try:
        soak.run(track_ids)
    finally:
        soak.stop()
    return report(soak, track_ids, folder)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/genreweb_soak")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the whole run")
    return parser.parse_args()


def configure(args: argparse.Namespace, folder: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="genreweb.settings",
        DATABASE_URL=args.database,
        CELERY_BROKER_URL=args.broker,
        CELERY_TASK_ALWAYS_EAGER="false",
        MEDIA_ROOT=str(folder / "media"),
        GENREWEB_DATA_DIR=str(folder / "data"),
        GENREWEB_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT),
        GENREWEB_SWEEP_EVERY=str(SWEEP_EVERY),
        GENREWEB_CLEANUP_EVERY="60",
        GENREWEB_TASK_TIME_LIMIT=str(TASK_TIME_LIMIT),
        PYTHONUNBUFFERED="1",
    )
    os.environ.setdefault("GENREWEB_MODEL_DIR", str(REPO / "var" / "models"))


def prepare_services(args: argparse.Namespace) -> None:
    import psycopg
    import redis
    from django.core.management import call_command

    name = args.database.rsplit("/", 1)[1]
    admin = args.database.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", verbosity=0)
    redis.Redis.from_url(args.broker).flushdb()


# ---------------------------------------------------------------- the files


def make_files(folder: Path, count: int, rng: random.Random) -> list[tuple[str, Path]]:
    """`count` files, each different (the library keeps one track per content)."""
    folder.mkdir(parents=True)
    kinds = rng.choices(list(KINDS), weights=list(KINDS.values()), k=count)
    return [(kind, make_one(kind, folder / f"{i:04d}", rng, i)) for i, kind in enumerate(kinds)]


def make_one(kind: str, folder: Path, rng: random.Random, seed: int) -> Path:
    from tests.audiofiles import make_audio_file
    from tests.engine import bombs, hostile

    folder.mkdir()
    seconds = rng.uniform(3.0, 8.0)
    if kind == "good":
        return make_audio_file(folder, rng.choice(GOOD_FORMATS), seconds=seconds, seed=seed)
    if kind == "junk_tail":
        path = make_audio_file(folder, rng.choice(("mp3", "flac")), seconds=seconds, seed=seed)
        return hostile.with_tail(path, hostile.garbage(rng.randint(8, 4096), seed), "junk")
    if kind == "surround_7_1":
        signals = hostile.channel_signals(8, 48_000, seconds=2.0 + seed / 1000)
        return hostile.write_multichannel(folder / "surround.flac", signals, 48_000)
    if kind == "impossible_wav":
        path = rng.choice(hostile.impossible_wavs(folder))
        return hostile.with_tail(path, seed.to_bytes(4, "big"), "impossible")
    if kind == "cut_short":
        path = make_audio_file(folder, rng.choice(("wav", "flac", "m4a")), seconds=6.0, seed=seed)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // rng.randint(2, 5)])
        return path
    if kind == "not_audio":
        path = folder / rng.choice(("page.mp3", "notes.flac", "blob.wav"))
        path.write_bytes(b"<html>" + hostile.garbage(rng.randint(100, 20_000), seed))
        return path
    mp3 = make_audio_file(folder, "mp3", seconds=seconds, seed=seed, name="audio")
    tag = (
        bombs.many_frames_tag(rng.randint(5_000, 30_000))
        if kind == "id3_frames_bomb"
        else _inflating_tag()
    )
    return bombs.mp3_with_tag(mp3, tag, folder / "bomb.mp3")


_INFLATING: list[bytes] = []


def _inflating_tag() -> bytes:
    from tests.engine import bombs

    if not _INFLATING:  # costly to make; the audio behind it makes each file differ
        _INFLATING.append(bombs.inflating_tag())
    return _INFLATING[0]


def store_and_queue(files: list[tuple[str, Path]]) -> list[int]:
    """Every file stored as a track of one user and queued once the transaction commits."""
    from django.contrib.auth import get_user_model
    from django.core.files import File
    from django.db import transaction

    from classifier.engine.files import sha256_of
    from classifier.models import Track
    from classifier.tasks import queue_analyses

    owner = get_user_model().objects.create_user("soak", password="soak-password-1")
    ids = []
    with transaction.atomic():
        for _, path in files:
            track = Track(
                owner=owner,
                original_name=path.name,
                sha256=sha256_of(path),
                size=path.stat().st_size,
            )
            with path.open("rb") as handle:
                track.file.save(path.name, File(handle), save=False)
            track.save()
            ids.append(track.pk)
        queue_analyses(ids)
    return ids


# ---------------------------------------------------------------- the worker and the kills


class Soak:
    def __init__(self, folder: Path, args: argparse.Namespace, rng: random.Random) -> None:
        self.folder, self.args, self.rng = folder, args, rng
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.kills: Counter[str] = Counter()
        self.unexpected_exits = 0
        self.rss: dict[str, list[float]] = {"main": [], "child": []}
        self.child_rss_by_progress: list[tuple[int, float]] = []
        self.seconds = 0.0

    def run(self, track_ids: list[int]) -> None:
        start = time.monotonic()
        self.launch()
        next_kill = start + self.rng.uniform(5, 15)
        while time.monotonic() - start < self.args.timeout:
            finished = self.finished(track_ids)
            if finished == len(track_ids):
                break
            self.sample(finished)
            if self.process is not None and self.process.poll() is not None:
                self.unexpected_exits += 1
                self.launch()
            if sum(self.kills.values()) < self.args.kills and time.monotonic() >= next_kill:
                self.kill()
                next_kill = time.monotonic() + self.rng.uniform(5, 15)
            time.sleep(0.5)
        self.seconds = time.monotonic() - start

    def launch(self) -> None:
        log = self.folder / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        command = [
            sys.executable, "-m", "celery", "-A", "genreweb", "worker", "--beat",
            "--schedule", str(self.folder / "beat-schedule"), "--pool", "prefork",
            "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ]  # fmt: skip
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )

    def children(self) -> list[int]:
        if self.process is None:
            return []
        try:
            text = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def kill(self) -> None:
        children = self.children()
        if children and self.rng.random() < 0.5:
            os.kill(self.rng.choice(children), signal.SIGKILL)
            self.kills["pool child"] += 1
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)  # main, children and beat at once
        self.process.wait()
        self.kills["whole worker"] += 1
        self.launch()

    def sample(self, finished: int) -> None:
        if self.process is None:
            return
        main = rss_mb(self.process.pid)
        if main:
            self.rss["main"].append(main)
        for pid in self.children():
            child = rss_mb(pid)
            if child:
                self.rss["child"].append(child)
                self.child_rss_by_progress.append((finished, child))

    def finished(self, track_ids: list[int]) -> int:
        from classifier.models import Status, Track

        return Track.objects.filter(
            pk__in=track_ids, status__in=(Status.DONE, Status.FAILED)
        ).count()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # The main process alone: its warm shutdown ends the pool children and beat.
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def log_text(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs)


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+)", status)
    return int(match.group(1)) / 1024 if match else 0.0


# ---------------------------------------------------------------- the report


def report(soak: Soak, track_ids: list[int], folder: Path) -> int:
    from django.conf import settings

    from classifier.engine.files import is_temporary
    from classifier.models import Status, Track
    from classifier.services import cleanup

    tracks = list(Track.objects.filter(pk__in=track_ids))
    by_status = Counter(track.status for track in tracks)
    lost = sum(track.status not in (Status.DONE, Status.FAILED) for track in tracks)
    unexplained = [t.pk for t in tracks if t.status == Status.FAILED and not t.error.strip()]
    tracebacks = [t.pk for t in tracks if "Traceback" in t.error]
    hangs = sum("time limit" in track.error for track in tracks)
    log = soak.log_text()
    stored = len(re.findall(r"classifier\.analyse_track\[[^\]]+\] succeeded in [^:]+: 'done'", log))
    done = by_status[Status.DONE]
    doubled = max(0, stored - done) + (len(tracks) - len({t.sha256 for t in tracks}))
    crashes = soak.unexpected_exits + len(
        [s for s in re.findall(r"exited with 'signal (\d+)", log) if s != str(signal.SIGKILL.value)]
    )
    media = Path(settings.MEDIA_ROOT)
    left = [p for p in media.rglob("*") if is_temporary(p.name)]
    swept = cleanup.remove_stale_media_temporaries(older_than=0)
    still = [p for p in media.rglob("*") if is_temporary(p.name)]
    errors = Counter(_error_kind(t.error) for t in tracks if t.status == Status.FAILED)
    peak = max(soak.rss["main"] + soak.rss["child"], default=0.0)
    print(f"run: {soak.seconds:.0f} s; kills: {dict(soak.kills)}; worker logs: {len(soak.logs)}")
    print(f"tracks: {dict(by_status)}; failed by reason: {dict(errors)}")
    print(f"attempts: {dict(Counter(t.attempts for t in tracks))}")
    print(f"results stored per the worker logs: {stored} 'done' for {done} done tracks")
    print(f"failed without a message: {len(unexplained)}; with a traceback: {len(tracebacks)}")
    print(
        f"temporary files: {len(left)} at the end, removed by the sweep {len(swept)}, "
        f"left {len(still)}"
    )
    print(f"worker RSS MB: main peak {max(soak.rss['main'], default=0):.0f}, "
          f"pool child peak {max(soak.rss['child'], default=0):.0f}; {flatness(soak)}")  # fmt: skip
    print(f"soak folder: {folder}")
    temp_left = len(still)
    print(
        f"files={len(tracks)} kills={sum(soak.kills.values())} crashes={crashes} hangs={hangs} "
        f"lost={lost} doubled={doubled} temp_left={temp_left} peak_rss_mb={peak:.0f}"
    )
    bad = lost or doubled or unexplained or tracebacks or crashes or temp_left
    return 1 if bad else 0


def flatness(soak: Soak) -> str:
    """Pool children's median RSS over each quarter of the tracks (by how many had finished)."""
    samples = soak.child_rss_by_progress
    total = max((finished for finished, _ in samples), default=0)
    quarters = [
        [mb for finished, mb in samples if q * total / 4 <= finished <= (q + 1) * total / 4]
        for q in range(4)
    ]
    if not all(quarters):
        return "too few samples to judge the trend"
    medians = ", ".join(f"{statistics.median(quarter):.0f}" for quarter in quarters)
    return f"pool children's median MB over each quarter of the tracks: {medians}"


def _error_kind(error: str) -> str:
    for needle in ("cut short", "damaged", "not an audio", "not a readable", "cannot be decoded",
                   "stopped its worker", "time limit", "tags"):  # fmt: skip
        if needle in error:
            return needle
    return error[:60]


if __name__ == "__main__":
    sys.exit(main())
