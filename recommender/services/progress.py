"""How far the catalog build got: counts per status, and the tracks a stopped build left."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from recommender.models import CatalogTrack, Status
from recommender.services.claims import claimable


@dataclass(frozen=True)
class Unfinished:
    """Pending and sampled tracks nobody holds: what to queue again for a build to go on."""

    to_sample: list[int]
    to_analyse: list[int]

    def counts(self) -> dict[str, int]:
        return {Status.PENDING: len(self.to_sample), Status.SAMPLED: len(self.to_analyse)}


def unfinished_tracks() -> Unfinished:
    """The tracks to queue again: how a stopped build goes on.

    Queueing one whose message still waits in the broker makes a duplicate, which is
    harmless: the second task finds the track claimed or past that step and does nothing.
    """
    return Unfinished(to_sample=_unclaimed(Status.PENDING), to_analyse=_unclaimed(Status.SAMPLED))


def _unclaimed(status: str) -> list[int]:
    return list(CatalogTrack.objects.filter(claimable(status)).values_list("pk", flat=True))


def progress() -> dict[str, int]:
    counts = dict(CatalogTrack.objects.values_list("status").annotate(n=Count("id")))
    return {status: counts.get(status, 0) for status in Status.values}


def format_progress(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{counts[s]} {s}" for s in Status.values)
    return f"catalog: {total} tracks: {parts}"


def unfinished(counts: dict[str, int]) -> int:
    return counts[Status.PENDING] + counts[Status.SAMPLED]
