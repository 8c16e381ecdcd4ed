"""Processing a track: claim it, analyse it, store the analysis and tags, or fail it.

A track moves pending -> processing -> done | failed; a task claims it with a conditional
update, so two messages for one track never both analyse it. While it analyses, the worker
beats the claim (`heartbeat_at`); a claim silent for GENREWEB_HEARTBEAT_TIMEOUT lost its
worker (`dead_claim`), and the sweep or a user's re-analyse queues the track again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from classifier.engine.analysis import Analysis
from classifier.engine.errors import EngineError, TagError
from classifier.engine.filetags import read_tags, write_genres
from classifier.engine.runner import analyse
from classifier.models import ReviewChoice, Stage, Status, Track
from classifier.services import evidence
from classifier.services.active_model import engine_config
from classifier.services.stored import track_fields
from classifier.services.taxonomy import tag_spellings

log = logging.getLogger(__name__)

# A track whose analysis kills its worker this many times is marked failed, not retried.
MAX_ATTEMPTS = 3
# Progress is written to the database at most every this much of a stage.
PROGRESS_STEP = 0.1
PROGRESS_INTERVAL = 1.0

TimeLimitErrors = tuple[type[BaseException], ...]


def process_track(
    track_id: int, task_id: str | None = None, *, time_limits: TimeLimitErrors = ()
) -> str:
    """Analyse one track and write its tags; returns "done", "failed" or "skipped".

    Only a pending track is claimed (or, for the message that claimed it, its own
    processing track again: a redelivery after the worker died). Results are stored only
    while the claim still holds, so a track never ends with two results. `time_limits` are
    the exceptions by which the caller's task queue stops a task that ran out of time.
    """
    token = claim_track(track_id, task_id)
    if token is None:
        return "skipped"
    track = Track.objects.filter(pk=track_id).first()
    if track is None:  # deleted since it was claimed
        return "skipped"
    with heartbeat(track_id, token):
        try:
            analysis = run_engine(track, token)
        except EngineError as exc:
            return "failed" if fail_track(track_id, token, str(exc)) else "skipped"
        except Exception as exc:
            if is_transient(exc):
                release_claim(track_id, token)
                raise
            log.exception("analysis of track %s failed", track_id)
            failed = fail_track(track_id, token, explain_crash(exc, time_limits))
            return "failed" if failed else "skipped"
        return "done" if store_analysis(track, token, analysis) else "skipped"


def claim_track(track_id: int, task_id: str | None = None) -> uuid.UUID | None:
    """Mark the track processing if it is ours to analyse; the claim's token, or None."""
    claimable = Q(status=Status.PENDING)
    if task_id:
        claimable |= Q(status=Status.PROCESSING, task_id=task_id)
    token = uuid.uuid4()
    now = timezone.now()
    claimed = Track.objects.filter(claimable, pk=track_id, attempts__lt=MAX_ATTEMPTS).update(
        status=Status.PROCESSING,
        stage=Stage.DECODING,
        progress=0.0,
        error="",
        task_id=task_id or "",
        claim_token=token,
        claimed_at=now,
        heartbeat_at=now,
        updated_at=now,
        attempts=F("attempts") + 1,
    )
    if claimed == 1:
        return token
    _fail_if_exhausted(track_id, claimable)
    return None


def _fail_if_exhausted(track_id: int, claimable: Q) -> None:
    Track.objects.filter(claimable, pk=track_id, attempts__gte=MAX_ATTEMPTS).update(
        status=Status.FAILED,
        stage=Stage.FAILED,
        claim_token=None,
        updated_at=timezone.now(),
        error=f"The analysis stopped its worker {MAX_ATTEMPTS} times (out of memory, or a "
        "crash while decoding); it was not tried again.",
    )


def _claimed(track_id: int, token: uuid.UUID) -> QuerySet[Track]:
    return Track.objects.filter(pk=track_id, status=Status.PROCESSING, claim_token=token)


def update_claimed(track_id: int, token: uuid.UUID, **fields: Any) -> bool:
    """Update the track only while this claim holds it (which also says the claim lives)."""
    now = timezone.now()
    return _claimed(track_id, token).update(updated_at=now, heartbeat_at=now, **fields) == 1


# ---------------------------------------------------------------- live and dead claims


def heartbeat_every() -> float:
    """Seconds between a worker's heartbeats: three go by before its claim counts as dead."""
    return settings.GENREWEB_HEARTBEAT_TIMEOUT / 3


def beat(track_id: int, token: uuid.UUID) -> bool:
    """Say the claim's worker is alive; False once the claim no longer holds."""
    return _claimed(track_id, token).update(heartbeat_at=timezone.now()) == 1


@contextlib.contextmanager
def heartbeat(track_id: int, token: uuid.UUID) -> Iterator[None]:
    """Beat the claim from a thread while the block runs, so that a long decode that reports
    no progress still shows a live worker. The thread stops with the block, or when the claim
    is lost (re-queued by the sweep, or the track deleted)."""
    stopped = threading.Event()

    def run() -> None:
        try:
            while not stopped.wait(heartbeat_every()):
                try:
                    if not beat(track_id, token):
                        return
                except Exception:  # the database may be down a moment: beat again later
                    log.warning("heartbeat of track %s failed", track_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name=f"heartbeat-{track_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join(5)


def dead_claim(now: datetime | None = None) -> Q:
    """Processing tracks whose worker is gone: no heartbeat for GENREWEB_HEARTBEAT_TIMEOUT,
    or claimed longer than GENREWEB_STALE_AFTER ago (tasks are stopped well before)."""
    now = now or timezone.now()
    silent_since = now - timedelta(seconds=settings.GENREWEB_HEARTBEAT_TIMEOUT)
    claimed_before = now - timedelta(seconds=settings.GENREWEB_STALE_AFTER)
    return Q(status=Status.PROCESSING) & (
        Q(heartbeat_at__lt=silent_since)
        | Q(heartbeat_at__isnull=True, claimed_at__lt=silent_since)  # claimed before beats
        | Q(claimed_at__lt=claimed_before)
    )


def not_live(now: datetime | None = None) -> Q:
    """Tracks no live worker is analysing: anything but processing, or a dead claim."""
    return ~Q(status=Status.PROCESSING) | dead_claim(now)


def progress_reporter(
    track_id: int, token: uuid.UUID, clock: Callable[[], float] = time.monotonic
) -> Callable[[str, float], None]:
    """An on_progress callback for the engine, writing stage changes, and a tenth's move at
    most every PROGRESS_INTERVAL seconds: a track analysed in a second gets no writes but
    its stages' (each write was about a tenth of a second track's time on the database)."""
    last: dict[str, Any] = {"stage": None, "fraction": 0.0, "at": clock()}

    def report(stage: str, fraction: float) -> None:
        now = clock()
        moved = fraction - last["fraction"] >= PROGRESS_STEP
        if stage == last["stage"] and not (moved and now - last["at"] >= PROGRESS_INTERVAL):
            return
        last.update(stage=stage, fraction=fraction, at=now)
        stage_value = stage if stage in Stage.values else Stage.ANALYSING
        update_claimed(track_id, token, stage=stage_value, progress=round(fraction, 3))

    return report


def run_engine(track: Track, token: uuid.UUID) -> Analysis:
    return analyse(
        track.audio_path,
        engine_config(),
        min_confidence=settings.GENREWEB_MIN_CONFIDENCE,
        on_progress=progress_reporter(track.pk, token),
    )


def store_analysis(track: Track, token: uuid.UUID, analysis: Analysis) -> bool:
    """Store the verdict fused with the file's tag, album and artist (and the audio's own
    beside it), write the tags with the track's policy, mark it done."""
    fused, evidence_fields = evidence.arrival(track, analysis)
    fields = {**track_fields(fused), **evidence_fields}
    if track.review_choice == ReviewChoice.KEEP:
        fields["verdict"]["tag_values"] = []  # the owner keeps the file's own genres
    if not update_claimed(track.pk, token, stage=Stage.TAGGING, progress=0.0, **fields):
        return False
    tag_error = ""
    try:
        after, _ = write_track_tags(
            track, fields["verdict"]["tag_values"], track.tag_policy, analysis.model
        )
    except TagError as exc:
        after, tag_error = track.genres_after, f"Genres found, but the tags were not written: {exc}"
    return update_claimed(
        track.pk,
        token,
        status=Status.DONE,
        stage=Stage.DONE,
        progress=1.0,
        genres_after=after,
        error=tag_error,
        claim_token=None,
        analysed_at=timezone.now(),
    )


def write_track_tags(
    track: Track, values: list[str], policy: str, model: str
) -> tuple[list[str], bool]:
    """Write `values` into the stored file with `policy`: the file's genres afterwards, and
    whether the file changed.

    With nothing to write (an uncertain verdict) the file is left alone, whatever the
    policy, so "replace" never empties a file's genres. A library folder's file is never
    written here: folders are read-only by default (the folder may be mounted read-only).
    """
    path = track.audio_path
    if not values or track.in_folder:
        return list(read_tags(path).genres), False
    result = write_genres(path, values, policy=policy, provenance={"model": model})
    return list(result.after), result.changed


def refuse_tracks(track_ids: list[int]) -> int:
    """Fuse analysed tracks again from their stored audio verdicts (their album or artist
    changed): no audio is analysed. A track whose tag values change gets them written with
    its policy. A row analysed again meanwhile is left to that analysis. How many changed."""
    tracks = list(
        Track.objects.filter(pk__in=track_ids, status=Status.DONE).exclude(audio_verdict=None)
    )
    by_owner: dict[int, list[Track]] = {}
    for track in tracks:
        by_owner.setdefault(track.owner_id, []).append(track)
    changed = 0
    spellings = tag_spellings() if tracks else {}
    for owner_id, owned in by_owner.items():
        outcomes = evidence.fuse_targets(owner_id, evidence.stored_targets(owned))
        for track in owned:
            outcome = outcomes[track.pk]
            fields = evidence.verdict_fields(outcome, track.review_choice, spellings)
            changed += _store_refused(track, fields)
    return changed


def _store_refused(track: Track, fields: dict[str, Any]) -> bool:
    still = Track.objects.filter(pk=track.pk, status=Status.DONE, analysed_at=track.analysed_at)
    if not still.update(updated_at=timezone.now(), **fields):
        return False
    values = fields["verdict"]["tag_values"]
    if values and values != track.tag_values:
        try:
            after, _ = write_track_tags(track, values, track.tag_policy, track.model_version)
        except TagError as exc:
            log.warning("tags of track %s not written after fusing again: %s", track.pk, exc)
        else:
            still.update(genres_after=after)
    return True


def fail_track(track_id: int, token: uuid.UUID, message: str) -> bool:
    return update_claimed(
        track_id,
        token,
        status=Status.FAILED,
        stage=Stage.FAILED,
        error=message[:2000],
        claim_token=None,
    )


def release_claim(track_id: int, token: uuid.UUID) -> None:
    """Hand the track back to pending (a network error: its task is retried)."""
    with contextlib.suppress(Exception):  # the database may be what is down
        update_claimed(
            track_id,
            token,
            status=Status.PENDING,
            stage=Stage.QUEUED,
            claim_token=None,
            attempts=F("attempts") - 1,
        )


# Errors of the network or database, worth a retry (the task retries them with backoff).
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


def is_transient(exc: BaseException) -> bool:
    """Errors of the network or database, worth a retry; everything else is final."""
    return isinstance(exc, TRANSIENT_ERRORS)


def explain_crash(exc: BaseException, time_limits: TimeLimitErrors = ()) -> str:
    """A readable reason for an unexpected failure; `time_limits`: the task queue's
    "out of time" exceptions."""
    if isinstance(exc, time_limits):
        minutes = settings.GENREWEB_TASK_TIME_LIMIT / 60
        return f"The analysis took longer than {minutes:.0f} minutes and was stopped."
    if isinstance(exc, MemoryError):
        return "The analysis ran out of memory."
    return "The analysis failed because of an internal error; try re-analysing the track."


def requeue_stale(now: datetime | None = None) -> list[int]:
    """Hand back tracks whose worker vanished, and find pending tracks whose message was
    lost: the tracks to queue again.

    A dead claim (`dead_claim`) has lost its worker. A pending track untouched for
    GENREWEB_STALE_AFTER never reached a worker (the broker was down when it was queued).
    Each row is taken with a conditional update that repeats the test, so sweeps running
    at once (two beats, or a beat and a worker's start) queue a track once between them;
    a duplicate message would be harmless anyway: only one can claim the track.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.GENREWEB_STALE_AFTER)
    requeued = []
    with transaction.atomic():
        # In key order, so that concurrent sweeps lock rows in the same order.
        stuck = Track.objects.filter(dead_claim(now)).order_by("pk")
        for pk, token in stuck.values_list("pk", "claim_token"):
            if Track.objects.filter(dead_claim(now), pk=pk, claim_token=token).update(
                status=Status.PENDING,
                stage=Stage.QUEUED,
                progress=0.0,
                task_id="",
                claim_token=None,
                claimed_at=None,
                heartbeat_at=None,
                updated_at=now,
            ):
                requeued.append(pk)
        forgotten = Track.objects.filter(status=Status.PENDING, updated_at__lt=cutoff)
        for pk in forgotten.order_by("pk").values_list("pk", flat=True):
            if Track.objects.filter(pk=pk, status=Status.PENDING, updated_at__lt=cutoff).update(
                updated_at=now
            ):
                requeued.append(pk)
    if requeued:
        log.warning("queued %d stale tracks again: %s", len(requeued), requeued)
    return requeued
