"""Step 1 of a catalog track: find, cut and store its ~30-second sample (pending -> sampled)."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from django.core.files import File
from django.utils import timezone

from recommender import sampler
from recommender.models import CatalogTrack, Status, sample_upload_to
from recommender.services.claims import claim, claimed, fail, network_failure, release

SAMPLED = "sampled"  # the outcome after which the track's analysis is due


def sample_track(track_id: int) -> str:
    """Find, cut and store the track's sample; returns the outcome.

    SAMPLED when the track now waits for its analysis (the caller queues it), else
    "skipped", "failed" or "lost"; RetryLater for a network failure worth another try.
    """
    token = claim(track_id, Status.PENDING)
    if token is None:
        return "skipped"
    track = CatalogTrack.objects.get(pk=track_id)
    artist = track.artists[0] if track.artists else ""
    try:
        with tempfile.TemporaryDirectory(prefix="catalog-sample-") as folder:
            found = sampler.fetch_sample(
                artist, sampler.search_title(track.title), track.duration_seconds, Path(folder)
            )
            name = _store_sample(track, found.path)
    except sampler.SampleNetworkError as exc:
        return network_failure(track, token, exc)
    except sampler.SampleError as exc:
        fail(track_id, token, f"no sample: {exc}")
        return "failed"
    except Exception as exc:
        release(track_id, token, f"{type(exc).__name__}: {exc}")
        raise
    if not _keep_sample(track_id, token, name, found):  # excluded or re-fetched meanwhile:
        track.sample.storage.delete(name)  # this sample is nobody's
        return "lost"
    return SAMPLED


def _store_sample(track: CatalogTrack, path: Path) -> str:
    storage = CatalogTrack._meta.get_field("sample").storage
    target = sample_upload_to(track, path.name)
    storage.delete(target)  # a re-fetch replaces the old sample under the same name
    with open(path, "rb") as handle:
        return storage.save(target, File(handle))


def _keep_sample(track_id: int, token: uuid.UUID, name: str, found: sampler.Sample) -> bool:
    """Record the stored sample on the track, if the claim still holds and it is pending."""
    return bool(
        claimed(track_id, token)
        .filter(status=Status.PENDING)
        .update(
            status=Status.SAMPLED,
            sample=name,
            sample_source=found.candidate.url[:1000],
            sample_source_title=found.candidate.title[:500],
            sample_match=found.candidate.score,
            sample_start=found.start,
            sampled_at=timezone.now(),
            failure_reason="",
            claim_token=None,
            claimed_at=None,
            attempts=0,
        )
    )
