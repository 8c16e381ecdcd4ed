"""A library at scale, measured: folder scans of many files, and the library's pages over many rows.

It writes --files short real audio files (one second of tones: WAV, FLAC, MP3, Ogg Vorbis and
M4A, one format per album) into an artist/album/track tree with their tags (title, artist,
album, track number, and a genre on most). Encoding thousands of files would take longer than
scanning them, so a few distinct recordings are encoded per format and each file is a copy of
one with its own tags: the files differ in their tag bytes (so in their hashes), not in their
audio. The folder is registered and scanned as a worker scans it (`folders.scan`, in a child
process): files per second to index, the child's peak memory (max RSS, and its growth over
the scan), and database queries per file; then scanned again with nothing changed.

Then the user's library is filled to --rows tracks (bulk-created: mostly analysed, with
primary genres, genre sets, embeddings and verdicts; some failed or still pending; uploads
and folder files, a few of those vanished), and the pages are timed through Django's test
client, signed in: the library page (newest first, filtered by genre, source, a search, with
missing files shown, sorted by title, a deep page), the genre chart's query, the JSON API's
list, and "songs like this" (the API, and its library half alone), each --requests times
after a warm-up: p50 and p95.

    python bench/library.py --files 10000 --rows 100000

It drops and creates the database of --database-url (PostgreSQL; a sqlite:/// URL works for
a quick run) and removes its temporary folder. The last line reads
`files_per_s=<x> rescan_s=<x> list_p95_ms=<x>` (list: the library page, newest first).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ANALYSED_AT = datetime(2026, 1, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FORMATS = ("flac", "mp3", "wav", "ogg", "m4a")
VARIANTS = 4  # distinct recordings encoded per format
RATE = 22_050
TRACKS_PER_ALBUM = 10
ALBUMS_PER_ARTIST = 5
FALLBACK_GENRES = ("rock", "pop", "jazz", "electronic", "hiphop", "classical", "metal", "blues")
WORDS = (
    "night", "river", "light", "summer", "echo", "shadow", "dance", "blue", "fire", "road",
    "dream", "city", "heart", "storm", "gold", "silver", "ghost", "ocean", "wild", "stone",
)  # fmt: skip


def main() -> int:
    args = parse_args()
    if args.child:
        return child(args)
    folder = Path(tempfile.mkdtemp(prefix="genreweb-library-bench-"))
    try:
        return run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="audio files in the folder")
    parser.add_argument("--rows", type=int, default=100_000, help="tracks in the library")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "GENREWEB_BENCH_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/genreweb_library_bench",
        ),
        help="dropped and created (PostgreSQL), or a sqlite:/// file",
    )
    parser.add_argument("--child", choices=["scan"], help=argparse.SUPPRESS)
    parser.add_argument("--folder-id", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def configure(database_url: str, folder: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="genreweb.settings",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL="memory://",
        MEDIA_ROOT=str(folder / "media"),
        GENREWEB_DATA_DIR=str(folder / "data"),
        ALLOWED_HOSTS="testserver",
        PYTHONUNBUFFERED="1",
    )


def run(args: argparse.Namespace, folder: Path) -> int:
    database_url = args.database_url
    if database_url.startswith("sqlite:///") and database_url.endswith(":memory:"):
        raise SystemExit("the scan runs in a child process: give a sqlite file, not :memory:")
    configure(database_url, folder)
    import django

    django.setup()
    logging.getLogger("axes").setLevel(logging.WARNING)  # one sign-in: not news
    prepare_database(database_url)
    measure(folder, args.files, args.rows, args.requests)
    return 0


def measure(
    folder: Path, files: int, rows: int, requests: int, scan_in_child: bool = True
) -> dict[str, float]:
    """Everything, on the configured database (Django set up): the figures, also printed.
    scan_in_child=False scans in this process (a test's database is this process's own)."""
    from django.contrib.auth import get_user_model

    from classifier.services import folders

    user = get_user_model().objects.create_user("bench", password="bench-library-password")
    library = folder / "library"
    started = time.perf_counter()
    count = write_tree(library, files)
    made = time.perf_counter() - started
    print(
        f"{count} files written in {made:.1f} s ({', '.join(FORMATS)}; {VARIANTS} recordings each)"
    )
    registered = folders.register(str(library), user.username)
    scan_once = scan_in_child_process if scan_in_child else scan_here

    first = scan_once(registered.pk)
    files_per_s = count / first["seconds"] if first["seconds"] else float("nan")
    print(
        f"first scan: {first['seconds']:.2f} s, {files_per_s:.0f} files/s, "
        f"{first['queries'] / max(count, 1):.3f} queries per file ({first['queries']} in all), "
        f"peak RSS {first['peak_mb']:.0f} MiB (+{first['grown_mb']:.0f} MiB during the scan), "
        f"counts {first['counts']}"
    )
    again = scan_once(registered.pk)
    print(
        f"rescan, nothing changed: {again['seconds']:.2f} s, {again['queries']} queries, "
        f"peak RSS {again['peak_mb']:.0f} MiB (+{again['grown_mb']:.0f} MiB), "
        f"counts {again['counts']}"
    )

    started = time.perf_counter()
    added = fill_library(user, registered, rows)
    print(f"{added} more track rows bulk-created in {time.perf_counter() - started:.1f} s")
    timings = time_pages(user, requests)
    figures = {
        "files_per_s": files_per_s,
        "rescan_s": again["seconds"],
        "list_p95_ms": timings["library page"][1],
    }
    print(" ".join(f"{name}={value:.2f}" for name, value in figures.items()))
    return figures


def prepare_database(database_url: str) -> None:
    from django.core.management import call_command

    if database_url.startswith("postgres"):
        import psycopg

        name = database_url.rsplit("/", 1)[1]
        admin = database_url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
    else:
        Path(database_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    call_command("migrate", verbosity=0)


# ---------------------------------------------------------------- the files


def recordings(folder: Path) -> dict[str, list[Path]]:
    """VARIANTS distinct one-second recordings per format (different tones)."""
    import numpy as np
    import soundfile

    from bench.tracks import encode

    folder.mkdir(parents=True)
    made: dict[str, list[Path]] = {}
    t = np.arange(RATE) / RATE
    for fmt in FORMATS:
        for n in range(VARIANTS):
            freqs = (220.0 * (1 + n / 4), 330.0 * (1 + n / 3))
            audio = (0.25 * sum(np.sin(2 * np.pi * f * t) for f in freqs)).astype(np.float32)
            path = folder / f"{fmt}{n}.{fmt}"
            if fmt in ("wav", "flac"):
                soundfile.write(path, audio, RATE, subtype="PCM_16")
            else:
                encode(path, audio, fmt)
            made.setdefault(fmt, []).append(path)
    return made


def write_tree(library: Path, count: int) -> int:
    """`count` tagged files in artist/album/track folders; one format per album."""
    sources = recordings(library.parent / "recordings")
    genres = FALLBACK_GENRES
    for n in range(count):
        album_no, track_no = divmod(n, TRACKS_PER_ALBUM)
        artist_no = album_no // ALBUMS_PER_ARTIST
        fmt = FORMATS[album_no % len(FORMATS)]
        artist = f"Artist {artist_no:04d} {WORDS[artist_no % len(WORDS)].title()}"
        album = f"Album {album_no:05d} {WORDS[(album_no * 7) % len(WORDS)].title()}"
        title = f"{WORDS[n % len(WORDS)].title()} {WORDS[(n * 3) % len(WORDS)]} {n}"
        directory = library / artist / album
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{track_no + 1:02d} {title}.{fmt}"
        shutil.copyfile(sources[fmt][n % VARIANTS], path)
        genre = genres[album_no % len(genres)] if album_no % 4 else ""
        tag(path, fmt, title=title, artist=artist, album=album, number=track_no + 1, genre=genre)
    return count


def tag(
    path: Path, fmt: str, *, title: str, artist: str, album: str, number: int, genre: str
) -> None:
    import mutagen
    from mutagen.id3 import ID3, TALB, TCON, TIT2, TPE1, TRCK
    from mutagen.wave import WAVE

    if fmt == "wav":
        wave = WAVE(path)
        wave.add_tags()
        frames: list[Any] = [TIT2(text=title), TPE1(text=artist), TALB(text=album)]
        frames += [TRCK(text=str(number))] + ([TCON(text=genre)] if genre else [])
        assert isinstance(wave.tags, ID3)
        for frame in frames:
            wave.tags.add(frame)
        wave.save()
        return
    audio = mutagen.File(path, easy=True)
    if audio.tags is None:
        audio.add_tags()
    audio["title"], audio["artist"], audio["album"] = title, artist, album
    audio["tracknumber"] = str(number)
    if genre:
        audio["genre"] = genre
    audio.save()


# ---------------------------------------------------------------- the scans


def scan_in_child_process(folder_id: int) -> dict[str, Any]:
    """One scan in a fresh process (its memory is the scan's own): what it measured."""
    from django.db import connections

    connections.close_all()
    command = [sys.executable, __file__, "--child", "scan", "--folder-id", str(folder_id)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ)
    if done.returncode != 0:
        raise SystemExit(f"the scan failed:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def child(args: argparse.Namespace) -> int:
    import django

    django.setup()
    result = scan_here(args.folder_id)
    print(json.dumps(result))
    return 0


def scan_here(folder_id: int) -> dict[str, Any]:
    """Scan the folder as a worker does, counting the queries and sampling memory."""
    from django.db import connection

    from classifier.models import LibraryFolder
    from classifier.services import folders

    queries = 0

    def count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    connection.ensure_connection()
    before = rss_mb()
    with connection.execute_wrapper(count), RssSampler() as sampler:
        started = time.perf_counter()
        for _ in folders.scan(folder_id):
            pass  # the ids to queue: the bench analyses nothing
        seconds = time.perf_counter() - started
    folder = LibraryFolder.objects.get(pk=folder_id)
    if folder.scan_error:
        raise SystemExit(f"the scan failed: {folder.scan_error}")
    return {
        "seconds": seconds,
        "queries": queries,
        "peak_mb": sampler.peak,
        "grown_mb": sampler.peak - before,
        "counts": {k: v for k, v in folder.scan_counts.items() if v},
    }


def rss_mb() -> float:
    """This process's resident memory now, in MiB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


class RssSampler:
    """The highest resident memory seen while it is open (sampled every 5 ms): the scan's
    own peak, which the process's high-water mark (ru_maxrss) hides under Django's start."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


# ---------------------------------------------------------------- the library


def genre_names() -> list[str]:
    from classifier.services.library import genre_choices
    from classifier.services.taxonomy import UNCERTAIN

    names = [value for value, _ in genre_choices() if value != UNCERTAIN]
    return names or list(FALLBACK_GENRES)


def fill_library(user: Any, library_folder: Any, rows: int) -> int:
    """Bulk-create the user's tracks up to `rows` in all; the ones the scan found are given
    verdicts too (most analysed), so the library looks analysed, not just scanned."""
    import numpy as np
    from django.db import connection

    from classifier.models import Source, Track

    genres = genre_names()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((len(genres), 200)).astype(np.float32)
    existing = list(Track.objects.filter(owner=user).order_by("id"))
    for n, track in enumerate(existing):
        _analysed(track, n, genres, centres, rng)
    Track.objects.bulk_update(
        existing,
        ["status", "stage", "primary_genre", "genre_index", "uncertain", "confidence",
         "verdict", "embedding", "duration", "model_version", "genres_after"],
        batch_size=1000,
    )  # fmt: skip
    extra = max(0, rows - len(existing))
    batch: list[Track] = []
    for n in range(extra):
        folder_file = n % 5 < 3
        title = f"{WORDS[n % len(WORDS)].title()} {WORDS[(n * 7) % len(WORDS)]} {n}"
        track = Track(
            owner=user,
            source=Source.FOLDER if folder_file else Source.UPLOAD,
            folder=library_folder if folder_file else None,
            relative_path=f"more/{n // 100:04d}/{n}.flac" if folder_file else "",
            missing=folder_file and n % 41 == 0,
            file="" if folder_file else f"tracks/{user.pk}/{n:064x}"[:60] + "/t.flac",
            original_name=f"{n}.flac",
            sha256=f"{n:064x}",
            size=20_000 + n,
            title=title,
            artist=f"Artist {n % 2000:04d} {WORDS[(n // 7) % len(WORDS)].title()}",
            album=f"Album {n % 9000:05d}",
            audio_format="flac",
        )
        _analysed(track, n, genres, centres, rng)
        batch.append(track)
        if len(batch) >= 2000:
            Track.objects.bulk_create(batch)
            batch = []
    Track.objects.bulk_create(batch)
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            # As autovacuum leaves a table that has settled: statistics and visibility map.
            cursor.execute("VACUUM ANALYZE classifier_track")
    assert Track.objects.filter(owner=user).count() >= min(rows, len(existing) + extra)
    return extra


def _analysed(track: Any, n: int, genres: list[str], centres: Any, rng: Any) -> None:
    """Give the track the state of a library's track: 85% analysed (a tenth of them
    uncertain), 5% failed, the rest pending or being analysed."""
    from classifier.models import Stage, Status

    kind = n % 20
    if kind == 0:
        track.status, track.stage, track.error = Status.FAILED, Stage.FAILED, "Not audio."
        return
    if kind in (1, 2):
        track.status, track.stage = (
            (Status.PENDING, Stage.QUEUED)
            if kind == 1
            else (
                Status.PROCESSING,
                Stage.ANALYSING,
            )
        )
        return
    # Skewed: the first genres are the most common.
    g = int(min(len(genres) - 1, rng.exponential(len(genres) / 4)))
    second = genres[(g + 1 + n % 3) % len(genres)]
    vector = centres[g] + 0.6 * rng.standard_normal(200).astype("float32")
    confidence = 0.3 + 0.7 * ((n * 37) % 100) / 100
    uncertain = n % 10 == 3
    track.status, track.stage = Status.DONE, Stage.DONE
    track.primary_genre = "" if uncertain else genres[g]
    track.uncertain = uncertain
    track.confidence = confidence
    track.genre_index = "" if uncertain else f"|{genres[g]}|{second}|"
    track.verdict = {
        "genres": [] if uncertain else [{"name": genres[g], "confidence": confidence}],
        "probabilities": {genres[g]: confidence, second: 1 - confidence},
        "tag_values": [] if uncertain else [genres[g]],
    }
    # What the files hold: no genre, the found one, or another (a preview's three kinds).
    track.genres_after = [[], [genres[g]], [second]][n % 3]
    track.embedding = [round(float(x), 4) for x in vector]
    track.duration = 60.0 + n % 300
    track.model_version = "bench-model"
    track.analysed_at = ANALYSED_AT + timedelta(seconds=n)


# ---------------------------------------------------------------- the pages


def time_pages(user: Any, requests: int) -> dict[str, tuple[float, float]]:
    from django.test import Client

    from classifier.models import Status, Track
    from classifier.services.library import genre_distribution
    from recommender.services.similar import similar_in_library

    client = Client()
    client.force_login(user)
    mine = Track.objects.filter(owner=user)
    top = genre_distribution(mine)[0].genre
    word = WORDS[5]
    probe = mine.filter(status=Status.DONE, embedding__isnull=False).exclude(primary_genre="")
    track = probe.order_by("id")[len(WORDS) // 2]
    pages: dict[str, Callable[[], Any]] = {
        "library page": lambda: _get(client, "/"),
        f"genre={top}": lambda: _get(client, f"/?genre={top}"),
        "source=folder": lambda: _get(client, "/?source=folder"),
        "missing=show": lambda: _get(client, "/?missing=show"),
        f"search q={word}": lambda: _get(client, f"/?q={word}"),
        "sort=title": lambda: _get(client, "/?sort=title"),
        "page=100": lambda: _get(client, "/?page=100"),
        "tag preview, all": lambda: _get(client, "/tags/preview/?policy=replace"),
        f"tag preview genre={top}": lambda: _get(client, f"/tags/preview/?genre={top}"),
        "genre chart (query)": lambda: genre_distribution(Track.objects.filter(owner=user)),
        "API list": lambda: _get(client, "/api/tracks/"),
        f"API list genre={top}": lambda: _get(client, f"/api/tracks/?genre={top}"),
        "similar API": lambda: _get(client, f"/api/tracks/{track.pk}/similar/"),
        "similar in library": lambda: similar_in_library(track, 10),
    }
    timings = {}
    for name, call in pages.items():
        started = time.perf_counter()
        call()
        first = 1000 * (time.perf_counter() - started)
        p50, p95 = timings[name] = timed(call, requests)
        print(f"{name:<24} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   (first {first:.0f} ms)")
    return timings


def _get(client: Any, url: str) -> None:
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}")


def timed(call: Callable[[], Any], requests: int) -> tuple[float, float]:
    """p50 and p95 in milliseconds, after a warm-up call."""
    call()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    from bench.pipeline import q

    return q(times, 50), q(times, 95)


if __name__ == "__main__":
    sys.exit(main())
