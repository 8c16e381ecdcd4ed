"""Building the catalog: seeds to tracks, each track sampled, analysed and indexed.

Every step is idempotent and resumable. A seed keeps how far its paging got; a track moves
pending -> sampled -> analysed, each step claimed first with a conditional UPDATE on its
status (Funkwhale-style), so two workers never both sample or analyse the same track and a
step whose worker died is claimed again once its lease (RECOMMENDER_CLAIM_LEASE) runs out.
"""
from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from classifier.engine.analysis import Analysis
from classifier.engine.runner import analyse
from classifier.services.active_model import engine_config
from classifier.services.stored import analysis_fields
from recommender import conf, sampler
from recommender.models import (
    CatalogArtist,
    CatalogSeed,
    CatalogTrack,
    Status,
    sample_upload_to,
)
from recommender.spotify import SpotifyClient, TrackInfo, advance, artist_genres, seed_id

log = logging.getLogger(__name__)
Report = Callable[[str], None]


class RetryLater(Exception):
    """A network failure: the step gave its claim back and should run again after `countdown`."""

    def __init__(self, message: str, countdown: float) -> None:
        super().__init__(message)
        self.countdown = countdown


# --- seeds -> pending tracks --------------------------------------------------------------

@dataclass
class HarvestReport:
    seeds: int = 0
    new_tracks: int = 0
    skipped_seeds: list[str] = field(default_factory=list)  # finished in an earlier run


def harvest(client: SpotifyClient, seeds: Iterable[tuple[str, str]], limit: int,
            report: Report = log.info) -> HarvestReport:
    """Take up to `limit` tracks from each seed, going on where an earlier run stopped."""
    result = HarvestReport()
    for kind, raw in seeds:
        value = seed_id(kind, raw)
        seed, _ = CatalogSeed.objects.get_or_create(kind=kind, value=value)
        result.seeds += 1
        if seed.is_done(limit):
            result.skipped_seeds.append(str(seed))
            report(f"{seed}: done in an earlier run ({seed.found} tracks)")
            continue
        while not seed.is_done(limit):
            step = advance(client, kind, value, seed.cursor, limit - seed.found)
            taken = step.tracks[:limit - seed.found]
            with transaction.atomic():
                result.new_tracks += len(add_tracks(taken))
                seed.cursor, seed.exhausted = step.state, step.exhausted
                seed.found += len(taken)
                seed.save(update_fields=["cursor", "exhausted", "found", "updated_at"])
        report(f"{seed}: {seed.found} tracks{' (all there are)' if seed.exhausted else ''}")
    fill_artist_genres(client)
    return result


def add_tracks(infos: Iterable[TrackInfo]) -> list[CatalogTrack]:
    """Create the tracks not in the catalog yet (pending), and queue their sampling."""
    created = []
    for info in infos:
        track, is_new = CatalogTrack.objects.get_or_create(
            spotify_id=info.spotify_id,
            defaults={"title": info.title, "artists": info.artists, "artist_ids": info.artist_ids,
                      "album": info.album, "album_id": info.album_id,
                      "release_year": info.release_year, "duration_ms": info.duration_ms,
                      "spotify_url": info.spotify_url, "cover_url": info.cover_url})
        if is_new:
            created.append(track)
            enqueue_sampling(track.pk)
    return created


def fill_artist_genres(client: SpotifyClient, batch: int = 200) -> int:
    """Give each track its artists' genres, fetching every artist once (artists/{id})."""
    done = 0
    while True:
        tracks = list(CatalogTrack.objects.filter(artist_genres_fetched=False)
                      .only("id", "artist_ids")[:batch])
        if not tracks:
            return done
        wanted = {a for t in tracks for a in t.artist_ids}
        known = dict(CatalogArtist.objects.filter(spotify_id__in=wanted)
                     .values_list("spotify_id", "genres"))
        for artist_id in sorted(wanted - known.keys()):
            artist = client.artist(artist_id)
            known[artist_id] = artist_genres(artist)
            CatalogArtist.objects.get_or_create(
                spotify_id=artist_id,
                defaults={"name": (artist.get("name") or "")[:500], "genres": known[artist_id]})
        for track in tracks:
            genres = sorted({g for a in track.artist_ids for g in known.get(a, [])})
            CatalogTrack.objects.filter(pk=track.pk).update(artist_genres=genres,
                                                            artist_genres_fetched=True)
        done += len(tracks)


# --- claims ----------------------------------------------------------------------------------

def claimable(status: str) -> Q:
    stale = timezone.now() - timedelta(seconds=conf.claim_lease())
    return Q(status=status) & (Q(claim_token__isnull=True) | Q(claimed_at__lt=stale))


def claim(track_id: int, status: str) -> uuid.UUID | None:
    """Take the track for one step if it is in `status` and nobody holds it; None otherwise."""
    token = uuid.uuid4()
    won = CatalogTrack.objects.filter(claimable(status), pk=track_id).update(
        claim_token=token, claimed_at=timezone.now(), attempts=F("attempts") + 1)
    return token if won else None


def claimed(track_id: int, token: uuid.UUID) -> QuerySet[CatalogTrack]:
    return CatalogTrack.objects.filter(pk=track_id, claim_token=token)


def release(track_id: int, token: uuid.UUID, reason: str) -> None:
    claimed(track_id, token).update(claim_token=None, claimed_at=None,
                                    failure_reason=f"will retry: {reason}"[:2000])


def fail(track_id: int, token: uuid.UUID, reason: str) -> bool:
    log.info("catalog track %s failed: %s", track_id, reason)
    return bool(claimed(track_id, token).update(
        status=Status.FAILED, failure_reason=reason[:2000], claim_token=None, claimed_at=None))


def retry_countdown(attempts: int) -> float:
    return min(float(conf.retry_backoff()) * 2 ** max(0, attempts - 1), 3600.0)


# --- step 1: the sample ----------------------------------------------------------------------

def sample_track(track_id: int) -> str:
    """Find, cut and store the track's sample; then queue its analysis. Returns the outcome."""
    token = claim(track_id, Status.PENDING)
    if token is None:
        return "skipped"
    track = CatalogTrack.objects.get(pk=track_id)
    artist = track.artists[0] if track.artists else ""
    try:
        with tempfile.TemporaryDirectory(prefix="catalog-sample-") as folder:
            found = sampler.fetch_sample(artist, sampler.search_title(track.title),
                                         track.duration_seconds, Path(folder))
            name = _store_sample(track, found.path)
    except sampler.SampleNetworkError as exc:
        return _network_failure(track, token, exc)
    except sampler.SampleError as exc:
        fail(track_id, token, f"no sample: {exc}")
        return "failed"
    except Exception as exc:
        release(track_id, token, f"{type(exc).__name__}: {exc}")
        raise
    with transaction.atomic():
        stored = claimed(track_id, token).filter(status=Status.PENDING).update(
            status=Status.SAMPLED, sample=name, sample_source=found.candidate.url[:1000],
            sample_source_title=found.candidate.title[:500], sample_match=found.candidate.score,
            sample_start=found.start, sampled_at=timezone.now(), failure_reason="",
            claim_token=None, claimed_at=None, attempts=0)
        if stored:
            enqueue_analysis(track_id)
    if not stored:  # excluded or re-fetched meanwhile: this sample is nobody's
        track.sample.storage.delete(name)
        return "lost"
    return "sampled"


def _store_sample(track: CatalogTrack, path: Path) -> str:
    storage = CatalogTrack._meta.get_field("sample").storage
    target = sample_upload_to(track, path.name)
    storage.delete(target)  # a re-fetch replaces the old sample under the same name
    with open(path, "rb") as handle:
        return storage.save(target, File(handle))


def _network_failure(track: CatalogTrack, token: uuid.UUID, exc: Exception) -> str:
    attempts = track.attempts
    if attempts >= conf.max_attempts():
        fail(track.pk, token, f"network kept failing ({attempts} attempts): {exc}")
        return "failed"
    release(track.pk, token, str(exc))
    raise RetryLater(str(exc), retry_countdown(attempts)) from exc


# --- step 2: the verdict ---------------------------------------------------------------------

def analyse_track(track_id: int) -> str:
    """Run the engine on the sample, store verdict and embedding, add it to the index."""
    from classifier.engine.errors import AudioError

    token = claim(track_id, Status.SAMPLED)
    if token is None:
        return "skipped"
    track = CatalogTrack.objects.get(pk=track_id)
    try:
        with local_sample(track) as path:
            analysis = run_engine(path)
    except AudioError as exc:
        fail(track_id, token, f"the engine could not read the sample: {exc}")
        return "failed"
    except FileNotFoundError:
        fail(track_id, token, "the sample file is missing; re-fetch the track")
        return "failed"
    except Exception as exc:
        release(track_id, token, f"{type(exc).__name__}: {exc}")
        raise
    fields = analysis_fields(analysis)
    with transaction.atomic():
        stored = claimed(track_id, token).filter(status=Status.SAMPLED).update(
            status=Status.ANALYSED, analysed_at=timezone.now(), failure_reason="",
            claim_token=None, claimed_at=None, attempts=0, **fields)
        if stored and fields["primary_genre"] and fields["embedding"]:
            transaction.on_commit(lambda: index_track(track_id, fields["primary_genre"],
                                                      fields["embedding"]))
    return "analysed" if stored else "lost"


def run_engine(path: Path) -> Analysis:
    return analyse(path, engine_config(), min_confidence=settings.GENREWEB_MIN_CONFIDENCE)


@contextmanager
def local_sample(track: CatalogTrack) -> Iterator[Path]:
    """The sample as a local file, copied out of a remote storage where needed."""
    if not track.sample:
        raise FileNotFoundError("no sample")
    try:
        local = Path(track.sample.path)
    except NotImplementedError:  # a storage without local paths
        local = None
    if local is not None:
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="catalog-analyse-") as folder:
        path = Path(folder) / Path(track.sample.name).name
        with track.sample.open("rb") as src, open(path, "wb") as dst:
            dst.write(src.read())
        yield path


def index_track(track_id: int, genre: str, embedding: list[float]) -> None:
    import numpy as np

    from recommender.index import catalog_index

    catalog_index().add(genre, track_id, np.asarray(embedding, dtype=np.float32))


def sync_index() -> int:
    """Add analysed tracks the index lacks (a worker that died between commit and index)."""
    import numpy as np

    from recommender.index import catalog_index

    index, added = catalog_index(), 0
    genres = (CatalogTrack.objects.filter(status=Status.ANALYSED).exclude(primary_genre="")
              .values_list("primary_genre", flat=True).distinct())
    for genre in genres:
        part = index.partition(genre)
        present = set(part.ids().tolist())
        analysed = (CatalogTrack.objects.filter(status=Status.ANALYSED, primary_genre=genre)
                    .filter(embedding__isnull=False))
        missing = sorted(set(analysed.values_list("pk", flat=True)) - present)
        for start in range(0, len(missing), 1000):
            rows = list(analysed.filter(pk__in=missing[start:start + 1000])
                        .values_list("pk", "embedding"))
            part.add([pk for pk, _ in rows], np.asarray([e for _, e in rows], dtype=np.float32))
            added += len(rows)
        part.flush()
    return added


def rebuild_index() -> dict[str, int]:
    """Rebuild every partition from the analysed tracks in the database."""
    from recommender.index import catalog_index

    rows = (CatalogTrack.objects.filter(status=Status.ANALYSED).exclude(primary_genre="")
            .filter(embedding__isnull=False).order_by("pk")
            .values_list("primary_genre", "pk", "embedding"))
    return catalog_index().rebuild(rows.iterator(chunk_size=2000))


# --- queueing and progress -------------------------------------------------------------------

def enqueue_sampling(track_id: int) -> None:
    from recommender import tasks

    transaction.on_commit(lambda: tasks.sample_catalog_track.delay(track_id))


def enqueue_analysis(track_id: int) -> None:
    from recommender import tasks

    transaction.on_commit(lambda: tasks.analyse_catalog_track.delay(track_id))


def enqueue_refetch(track_id: int) -> None:
    from recommender import tasks

    transaction.on_commit(lambda: tasks.refetch_catalog_track.delay(track_id))


def requeue_unfinished() -> dict[str, int]:
    """Queue again every pending or sampled track nobody holds: how a stopped build goes on.

    A message still waiting in the broker makes a duplicate here, which is harmless: the
    second task finds the track claimed or past that step and does nothing.
    """
    counts = {}
    for status, enqueue in ((Status.PENDING, enqueue_sampling),
                            (Status.SAMPLED, enqueue_analysis)):
        ids = list(CatalogTrack.objects.filter(claimable(status)).values_list("pk", flat=True))
        with transaction.atomic():
            for track_id in ids:
                enqueue(track_id)
        counts[status] = len(ids)
    return counts


def progress() -> dict[str, int]:
    counts = dict(CatalogTrack.objects.values_list("status").annotate(n=Count("id")))
    return {status: counts.get(status, 0) for status in Status.values}


def format_progress(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{counts[s]} {s}" for s in Status.values)
    return f"catalog: {total} tracks: {parts}"


def unfinished(counts: dict[str, int]) -> int:
    return counts[Status.PENDING] + counts[Status.SAMPLED]


# --- admin actions ---------------------------------------------------------------------------

def refetch(tracks: QuerySet[CatalogTrack]) -> int:
    """Forget sample and verdict and fetch them again (and the Spotify metadata)."""
    count = 0
    with transaction.atomic():
        for track in tracks.select_for_update():
            if track.sample:
                track.sample.storage.delete(track.sample.name)
            CatalogTrack.objects.filter(pk=track.pk).update(
                status=Status.PENDING, sample="", sample_source="", sample_source_title="",
                sample_match=None, sample_start=None, verdict=None, embedding=None,
                primary_genre="", confidence=None, uncertain=False, model_version="",
                failure_reason="", claim_token=None, claimed_at=None, attempts=0,
                sampled_at=None, analysed_at=None)
            enqueue_refetch(track.pk)
            count += 1
    return count


def refresh_metadata(track_id: int, client: SpotifyClient | None = None) -> bool:
    """Update a track's Spotify fields from tracks/{id}; False where Spotify is unavailable."""
    from recommender.spotify import SpotifyError, track_info

    try:
        client = client or SpotifyClient.from_settings()
        info = track_info(client.track(CatalogTrack.objects.get(pk=track_id).spotify_id))
    except SpotifyError as exc:
        log.warning("catalog track %s: metadata not refreshed: %s", track_id, exc)
        return False
    if info is None:
        return False
    CatalogTrack.objects.filter(pk=track_id).update(
        title=info.title, artists=info.artists, artist_ids=info.artist_ids, album=info.album,
        album_id=info.album_id, release_year=info.release_year, duration_ms=info.duration_ms,
        spotify_url=info.spotify_url, cover_url=info.cover_url)
    return True


def exclude(tracks: QuerySet[CatalogTrack]) -> int:
    """Take tracks out of recommendations for good (a running step's result is then dropped)."""
    return tracks.update(status=Status.EXCLUDED, claim_token=None, claimed_at=None)
