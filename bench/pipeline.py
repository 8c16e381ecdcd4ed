"""The pipeline, measured: real-format tracks uploaded, analysed by the Celery worker, tagged.

N 4-minute tracks made of GTZAN clips (bench/tracks.py; MP3 at 192 kbps, FLAC and M4A, a
third each by default) are uploaded one after another as the web app takes them (each spooled
to a temporary file, then `accept_upload` checks, hashes and stores it, and its analysis is
queued once the row commits), while a prefork Celery worker on PostgreSQL and Redis analyses
them: decoding, the CNN and genre head, the fused verdict stored, the genres written into the
stored file. The worker starts (and is ready) before the first upload; its pool children load
the model at their first track, which counts. Each track mixes clips of eight genres, so
most verdicts would be uncertain and write no tags: the bench sets GENREWEB_MIN_CONFIDENCE
to 0 (--min-confidence) so that every track's genres are written into its file.

    python bench/pipeline.py --tracks 60 --concurrency 2 --threads 1

Without --concurrency and --threads the worker runs with the product's defaults (what the
settings and Celery choose). It prints tracks per hour (from the first upload to the last
track done) and the time per track at the median and p95, overall and per format: from
upload accepted to status done (queueing included) and the worker's own (claimed to done).
It creates (and migrates) the database of --database and flushes the Redis database of
--broker. The last line reads `tracks_per_hour=<x> p50_s=<x> p95_s=<x>` (upload to done).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FORMATS = ("mp3", "flac", "m4a")
CACHE = Path(tempfile.gettempdir()) / "genreweb-pipeline-tracks"


def main() -> int:
    args = parse_args()
    folder = Path(tempfile.mkdtemp(prefix="genreweb-pipeline-"))
    configure(args, folder)
    import django

    django.setup()
    prepare_services(args)
    files = source_files(args.tracks, args.formats.split(","), Path(args.cache))
    worker = Worker(folder, args)
    try:
        worker.start()
        started = time.time()
        uploads = upload_all(files)
        track_ids = [track_id for track_id, _, _ in uploads]
        wait_done(track_ids, args.timeout)
    finally:
        worker.stop()
    code = report(args, uploads, started, worker)
    shutil.rmtree(folder, ignore_errors=True)
    return code


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=60)
    parser.add_argument("--concurrency", type=int, help="worker processes (default: the worker's)")
    parser.add_argument("--threads", type=int, help="GENREWEB_TORCH_THREADS (default: settings')")
    parser.add_argument("--formats", default=",".join(FORMATS), help="shared out evenly")
    parser.add_argument(
        "--min-confidence",
        default="0",
        help="GENREWEB_MIN_CONFIDENCE: the tracks mix eight genres, most would come out "
        "uncertain and get no tags written; at 0 every track's tags are written",
    )
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/pipe")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--cache", default=str(CACHE), help="where the made tracks are kept")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for the whole run")
    return parser.parse_args()


def configure(args: argparse.Namespace, folder: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="genreweb.settings",
        DATABASE_URL=args.database,
        CELERY_BROKER_URL=args.broker,
        CELERY_TASK_ALWAYS_EAGER="false",
        MEDIA_ROOT=str(folder / "media"),
        GENREWEB_DATA_DIR=str(folder / "data"),
        GENREWEB_MIN_CONFIDENCE=args.min_confidence,
        PYTHONUNBUFFERED="1",
    )
    os.environ.setdefault("GENREWEB_MODEL_DIR", str(REPO / "var" / "models"))
    if args.threads is not None:
        os.environ["GENREWEB_TORCH_THREADS"] = str(args.threads)


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


# ---------------------------------------------------------------- the tracks


def source_files(count: int, formats: list[str], cache: Path) -> list[tuple[str, Path]]:
    """`count` tracks, the formats taking turns; made once and kept in `cache`."""
    from bench.tracks import make_tracks

    wanted = [formats[i % len(formats)] for i in range(count)]
    files = []
    for fmt in formats:
        need = wanted.count(fmt)
        folder = cache / fmt
        paths = [folder / f"track{n}.{fmt}" for n in range(need)]
        if not all(path.exists() for path in paths):
            print(f"making {need} {fmt} tracks in {folder}", flush=True)
            folder.mkdir(parents=True, exist_ok=True)
            made = folder / "making"
            shutil.rmtree(made, ignore_errors=True)
            made.mkdir()
            for path in make_tracks(made, need, fmt):
                path.replace(folder / path.name)
        files.extend((fmt, path) for path in paths)
    order = {fmt: i for i, fmt in enumerate(formats)}
    return sorted(files, key=lambda item: (int(item[1].stem[5:]), order[item[0]]))


# ---------------------------------------------------------------- upload and worker


def upload_all(files: list[tuple[str, Path]]) -> list[tuple[int, str, float]]:
    """Each file taken in as the upload view does: (track id, format, intake seconds)."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import TemporaryUploadedFile
    from django.db import transaction

    from classifier.engine.files import hold
    from classifier.services.intake import accept_upload
    from classifier.tasks import queue_analyses

    owner = get_user_model().objects.create_user("pipeline", password="pipeline-password-1")
    uploads = []
    for fmt, path in files:
        begun = time.monotonic()
        size = path.stat().st_size
        upload = TemporaryUploadedFile(path.name, "application/octet-stream", size, None)
        hold(upload.file)
        with path.open("rb") as source:  # what the upload handler spools while receiving
            shutil.copyfileobj(source, upload, 64 * 1024)
        upload.flush()
        upload.seek(0)
        with transaction.atomic():
            intake = accept_upload(owner, upload)
            queue_analyses(intake.to_analyse)
        upload.close()
        assert intake.created, f"{path} was taken for a duplicate"
        uploads.append((intake.track.pk, fmt, time.monotonic() - begun))
    return uploads


def wait_done(track_ids: list[int], timeout: float) -> None:
    from classifier.models import Status, Track

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = Track.objects.filter(
            pk__in=track_ids, status__in=(Status.DONE, Status.FAILED)
        ).count()
        if finished == len(track_ids):
            return
        time.sleep(0.25)
    raise SystemExit(f"not all {len(track_ids)} tracks finished within {timeout:.0f} s")


class Worker:
    """One prefork Celery worker with its beat, as docker-compose runs it."""

    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        self.folder, self.args = folder, args
        self.log = folder / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "celery", "-A", "genreweb", "worker", "--beat",
            "--schedule", str(self.folder / "beat-schedule"), "--pool", "prefork",
            "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ]  # fmt: skip
        if self.args.concurrency is not None:
            command += ["--concurrency", str(self.args.concurrency)]
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 120
        while " ready." not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def concurrency(self) -> str:
        for line in self.log.read_text(errors="replace").splitlines():
            if ".> concurrency:" in line:
                return line.split("concurrency:", 1)[1].strip()
        return "?"


# ---------------------------------------------------------------- the report


def report(
    args: argparse.Namespace,
    uploads: list[tuple[int, str, float]],
    started: float,
    worker: Worker,
) -> int:
    from django.conf import settings

    from classifier.models import Status, Track

    tracks = {t.pk: t for t in Track.objects.filter(pk__in=[pk for pk, _, _ in uploads])}
    failed = [t for t in tracks.values() if t.status != Status.DONE]
    for track in failed[:5]:
        print(f"failed: {track.original_name}: {track.error[:200]}")
    done = [t for t in tracks.values() if t.status == Status.DONE and t.analysed_at]
    done_ids = {t.pk for t in done}
    untagged = sum(not t.genres_after for t in done)
    last = max(t.analysed_at.timestamp() for t in done) if done else time.time()
    seconds = last - started
    per_hour = len(done) * 3600 / seconds if seconds > 0 else 0.0
    latency: dict[str, list[float]] = defaultdict(list)
    own: dict[str, list[float]] = defaultdict(list)
    intake: dict[str, list[float]] = defaultdict(list)
    for pk, fmt, intake_seconds in uploads:
        intake[fmt].append(intake_seconds)
        track = tracks[pk]
        if pk in done_ids:
            latency[fmt].append((track.analysed_at - track.created_at).total_seconds())
            own[fmt].append((track.analysed_at - track.claimed_at).total_seconds())
    for table in (latency, own, intake):
        table["all"] = [x for fmt, values in list(table.items()) for x in values]
    threads = settings.GENREWEB_TORCH_THREADS
    print(
        f"worker concurrency {worker.concurrency()}"
        f"{'' if args.concurrency else ' (the default)'}, "
        f"CPU threads per worker process {threads or '0 (one per core)'}; {os.cpu_count()} cores"
    )
    print(
        f"{len(done)} of {len(uploads)} tracks done in {seconds:.1f} s "
        f"({len(failed)} not done, {untagged} done without genres written)"
    )
    print(f"{'format':<6} {'n':>4} {'upload->done p50':>17} {'p95':>7} "
          f"{'worker p50':>11} {'p95':>7} {'intake p50':>11}")  # fmt: skip
    for fmt in [*args.formats.split(","), "all"]:
        lat, mine = latency.get(fmt, []), own.get(fmt, [])
        print(
            f"{fmt:<6} {len(lat):>4} {q(lat, 50):>16.2f}s {q(lat, 95):>6.2f}s "
            f"{q(mine, 50):>10.2f}s {q(mine, 95):>6.2f}s {q(intake.get(fmt, []), 50):>10.2f}s"
        )
    print(
        f"tracks_per_hour={per_hour:.0f} p50_s={q(latency['all'], 50):.2f} "
        f"p95_s={q(latency['all'], 95):.2f}"
    )
    return 1 if failed else 0


def q(values: list[float], percent: int) -> float:
    """The `percent` quantile (inclusive method); nan for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


if __name__ == "__main__":
    sys.exit(main())
