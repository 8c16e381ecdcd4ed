"""The review queue: tracks whose audio disagrees with their file's genre tag, or whose
verdict is uncertain, and the owner's answer to each (accept Genreweb's genre, or keep the
file's), remembered on the track (`Track.review_choice`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db.models import QuerySet
from django.utils import timezone

from classifier.curation.models import Genre
from classifier.curation.services.importing import sample_from_track
from classifier.engine.errors import TagError
from classifier.engine.filetags import read_tags, write_genres
from classifier.models import ReviewChoice, Status, TagPolicy, Track
from classifier.services import actions, processing

log = logging.getLogger(__name__)

DISAGREES = "disagrees"
UNCERTAIN = "uncertain"
FILTERS = {DISAGREES: "To review: audio disagrees with tag", UNCERTAIN: "To review: uncertain"}
CHOICES = {ReviewChoice.ACCEPT: "Accept Genreweb's genre", ReviewChoice.KEEP: "Keep the file's"}


def queue(tracks: QuerySet[Track], which: str) -> QuerySet[Track]:
    """The tracks still to review of one kind, the strongest case first."""
    pending = tracks.filter(status=Status.DONE, review_choice=ReviewChoice.NONE)
    if which == DISAGREES:
        return pending.filter(disagreement__gt=0).order_by("-disagreement", "id")
    if which == UNCERTAIN:
        return pending.filter(uncertain=True).order_by("confidence", "id")
    return tracks.none()


@dataclass
class ReviewResult:
    reviewed: int = 0
    samples: int = 0  # kept tags offered to staff as labelled samples
    errors: list[str] = field(default_factory=list)


def review(tracks: QuerySet[Track], choice: str) -> ReviewResult:
    """Remember the owner's choice on each analysed track and act on it: an accepted genre
    is written into the file (replace), a kept tag becomes the strongest evidence (the
    verdict follows it, the file keeps its genres) and is proposed as a dataset sample."""
    if choice not in (ReviewChoice.ACCEPT, ReviewChoice.KEEP):
        raise ValueError(f"unknown review choice {choice!r}")
    done = tracks.filter(status=Status.DONE)
    ids = list(done.values_list("pk", flat=True))
    Track.objects.filter(pk__in=ids).update(review_choice=choice, updated_at=timezone.now())
    processing.refuse_tracks(ids)
    result = ReviewResult(reviewed=len(ids))
    reviewed = Track.objects.filter(pk__in=ids).select_related("owner")
    if choice == ReviewChoice.ACCEPT:
        retag = actions.retag(reviewed, TagPolicy.REPLACE)
        result.errors.extend(retag.errors or [])
    else:
        for track in reviewed:
            _restore_file_genres(track, result)
            result.samples += _propose_sample(track)
    return result


def _restore_file_genres(track: Track, result: ReviewResult) -> None:
    """Put back the genres the file was uploaded with, where Genreweb replaced them."""
    if not track.genres_before or track.in_folder:  # a folder file was never written
        return
    try:
        now = list(read_tags(track.audio_path).genres)
        if now == list(track.genres_before):
            return
        written = write_genres(track.audio_path, list(track.genres_before), policy="replace")
    except TagError as exc:
        result.errors.append(f"{track.display_title}: {exc}")
        return
    Track.objects.filter(pk=track.pk).update(genres_after=list(written.after))


def _propose_sample(track: Track) -> bool:
    """The kept tag as a proposed sample for staff (once per audio)."""
    values = (track.fusion or {}).get("file", {}).get("values", [])
    # An ambiguous spelling ("Pop/Rock") labels nothing: staff would have to guess.
    names = sorted({v["genres"][0] for v in values if len(v["genres"]) == 1})
    genres = [g for g in (Genre.objects.resolve(n) for n in names) if g is not None]
    if not genres:
        return False
    said = ", ".join(track.genres_before)
    sample = sample_from_track(
        track, genres=genres, notes=f"The owner kept the file's genre tag ({said})."
    )
    return sample is not None
