"""Live and dead claims: the heartbeat, the rule by which a silent claim lost its worker,
re-analysing such a track, and sweeps that run at once."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from classifier.engine.errors import EngineError
from classifier.models import Status, Track
from classifier.services import processing
from classifier.tasks import requeue_stale_tracks

# The web tests' fixtures (these tests keep no conftest of their own).


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def claimed(track: Track, *, heartbeat: float, claimed: float | None = None) -> uuid.UUID:
    """Claim `track`, then date its heartbeat and claim `heartbeat` / `claimed` s back."""
    token = processing.claim_track(track.pk, task_id="the-task")
    assert token is not None
    Track.objects.filter(pk=track.pk).update(
        heartbeat_at=ago(heartbeat), claimed_at=ago(heartbeat if claimed is None else claimed)
    )
    return token


def is_dead(track: Track) -> bool:
    return Track.objects.filter(processing.dead_claim(), pk=track.pk).exists()


# ---------------------------------------------------------------- the rule


@pytest.mark.django_db
def test_a_claim_lives_while_its_heartbeat_is_fresh(pending_track, settings):
    timeout = settings.GENREWEB_HEARTBEAT_TIMEOUT
    claimed(pending_track, heartbeat=timeout - 5, claimed=timeout * 10)  # a long analysis
    assert not is_dead(pending_track)
    assert processing.requeue_stale() == []
    assert Track.objects.get(pk=pending_track.pk).status == Status.PROCESSING


@pytest.mark.django_db
def test_a_claim_silent_for_the_timeout_is_dead(
    pending_track, settings, django_capture_on_commit_callbacks
):
    token = claimed(pending_track, heartbeat=settings.GENREWEB_HEARTBEAT_TIMEOUT + 1)
    assert is_dead(pending_track)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert requeue_stale_tracks() == [pending_track.pk]
    assert len(callbacks) == 1
    track = Track.objects.get(pk=pending_track.pk)
    assert (track.status, track.claim_token, track.heartbeat_at) == (Status.PENDING, None, None)
    # The worker, were it only slow, can no longer store a result nor beat.
    assert not processing.update_claimed(pending_track.pk, token, status=Status.DONE)
    assert not processing.beat(pending_track.pk, token)


@pytest.mark.django_db
def test_a_claim_older_than_stale_after_is_dead_whatever_its_heartbeat(pending_track, settings):
    claimed(pending_track, heartbeat=0, claimed=settings.GENREWEB_STALE_AFTER + 1)
    assert is_dead(pending_track)


@pytest.mark.django_db
def test_a_claim_made_before_heartbeats_counts_from_its_claim(pending_track, settings):
    claimed(pending_track, heartbeat=0)
    Track.objects.filter(pk=pending_track.pk).update(heartbeat_at=None)
    assert not is_dead(pending_track)
    Track.objects.filter(pk=pending_track.pk).update(
        claimed_at=ago(settings.GENREWEB_HEARTBEAT_TIMEOUT + 1)
    )
    assert is_dead(pending_track)


@pytest.mark.django_db
def test_progress_and_beats_keep_a_claim_alive(pending_track, settings):
    token = claimed(pending_track, heartbeat=settings.GENREWEB_HEARTBEAT_TIMEOUT + 1)
    processing.progress_reporter(pending_track.pk, token)("analysing", 0.5)
    assert not is_dead(pending_track)
    Track.objects.filter(pk=pending_track.pk).update(
        heartbeat_at=ago(settings.GENREWEB_HEARTBEAT_TIMEOUT + 1)
    )
    assert processing.beat(pending_track.pk, token)
    assert not is_dead(pending_track)


def test_three_beats_go_by_before_the_timeout(settings):
    settings.GENREWEB_HEARTBEAT_TIMEOUT = 90
    assert processing.heartbeat_every() == 30


# ---------------------------------------------------------------- re-analysing


@pytest.mark.django_db
def test_reanalyse_answers_409_while_the_worker_lives(alice, pending_track, settings):
    claimed(pending_track, heartbeat=1)
    response = alice.post(reverse("api:track-reanalyse", args=[pending_track.pk]))
    assert response.status_code == 409
    assert Track.objects.get(pk=pending_track.pk).status == Status.PROCESSING


@pytest.mark.django_db
def test_reanalyse_takes_back_a_track_whose_worker_died(
    alice, pending_track, settings, django_capture_on_commit_callbacks
):
    claimed(pending_track, heartbeat=settings.GENREWEB_HEARTBEAT_TIMEOUT + 1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice.post(reverse("api:track-reanalyse", args=[pending_track.pk]))
    assert response.status_code == 202, response.content
    assert response.json()["track"]["status"] == "pending" and len(callbacks) == 1
    track = Track.objects.get(pk=pending_track.pk)
    assert (track.claim_token, track.task_id, track.attempts) == (None, "", 0)


@pytest.mark.django_db
def test_the_track_page_re_queues_a_track_whose_worker_died(alice, pending_track, settings):
    claimed(pending_track, heartbeat=settings.GENREWEB_HEARTBEAT_TIMEOUT + 1)
    response = alice.post(reverse("track-reanalyse", args=[pending_track.pk]), follow=True)
    assert "queued for a new analysis" in response.content.decode()
    assert Track.objects.get(pk=pending_track.pk).status == Status.PENDING


# ---------------------------------------------------------------- the heartbeat thread


def heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("heartbeat-") and t.is_alive()]


@pytest.mark.django_db(transaction=True)
def test_a_long_analysis_without_progress_still_beats(pending_track, settings, monkeypatch):
    settings.GENREWEB_HEARTBEAT_TIMEOUT = 0.3  # a beat every 0.1 s
    beats = []

    def silent_engine(track: Track, token: uuid.UUID):
        first = Track.objects.get(pk=track.pk).heartbeat_at
        for _ in range(10):  # a decode that reports nothing for a second
            time.sleep(0.1)
            beats.append(Track.objects.get(pk=track.pk).heartbeat_at)
        assert heartbeat_threads()
        assert beats[-1] > first
        raise EngineError("done waiting")

    monkeypatch.setattr(processing, "run_engine", silent_engine)
    assert processing.process_track(pending_track.pk) == "failed"
    assert len(set(beats)) >= 3, beats
    assert heartbeat_threads() == []  # it stopped with the analysis


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_stops_once_the_claim_is_lost(pending_track, settings):
    settings.GENREWEB_HEARTBEAT_TIMEOUT = 0.3
    token = claimed(pending_track, heartbeat=0)
    with processing.heartbeat(pending_track.pk, token):
        Track.objects.filter(pk=pending_track.pk).update(claim_token=uuid.uuid4())
        deadline = time.monotonic() + 5
        while heartbeat_threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heartbeat_threads() == []


# ---------------------------------------------------------------- sweeps at once


@pytest.mark.postgres(reason="two sweeps in two threads need row locks; SQLite locks the file")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["dead claim", "lost message"])
def test_two_sweeps_at_once_queue_each_track_once(user, settings, monkeypatch, kind):
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (DATABASE_URL=postgres://...)")
    pks = []
    for n in range(4):
        track = Track.objects.create(
            owner=user, file=f"t/{n}.flac", original_name=f"{n}.flac", sha256=f"{n:064d}", size=1
        )
        if kind == "dead claim":
            claimed(track, heartbeat=settings.GENREWEB_HEARTBEAT_TIMEOUT + 1)
        else:
            Track.objects.filter(pk=track.pk).update(
                updated_at=ago(settings.GENREWEB_STALE_AFTER + 1)
            )
        pks.append(track.pk)

    # Both sweeps have read their candidates before either updates a row: the worst order.
    barrier = threading.Barrier(2, timeout=20)
    update, waited = QuerySet.update, set()

    def update_after_both_read(self, **fields):
        name = threading.current_thread().name
        if name.startswith("sweep-") and name not in waited:
            waited.add(name)
            barrier.wait()
        return update(self, **fields)

    monkeypatch.setattr(QuerySet, "update", update_after_both_read)
    results: dict[str, list[int]] = {}

    def sweep() -> None:
        try:
            results[threading.current_thread().name] = processing.requeue_stale()
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep, name=f"sweep-{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2 and waited == {"sweep-0", "sweep-1"}
    assert sorted(results["sweep-0"] + results["sweep-1"]) == sorted(pks), results
    assert set(Track.objects.values_list("status", flat=True)) == {Status.PENDING}
