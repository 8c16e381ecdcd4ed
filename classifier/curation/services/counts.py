"""Per-genre sample counts and the warnings staff see before they train."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from classifier.curation.models import Genre, Sample

# Below this many approved samples a genre is too small to train well.
MIN_APPROVED = 5
# Above this ratio between the biggest and the smallest genre the dataset is badly unbalanced.
MAX_RATIO = 3.0


@dataclass(frozen=True)
class GenreCount:
    genre: str
    approved: int
    proposed: int
    rejected: int

    @property
    def total(self) -> int:
        return self.approved + self.proposed + self.rejected


def genre_counts() -> list[GenreCount]:
    """Every genre with its samples by review status, in taxonomy order."""
    rows = Genre.objects.annotate(
        approved=Count("samples", filter=Q(samples__status=Sample.Status.APPROVED)),
        proposed=Count("samples", filter=Q(samples__status=Sample.Status.PROPOSED)),
        rejected=Count("samples", filter=Q(samples__status=Sample.Status.REJECTED)),
    ).order_by("name")
    return [GenreCount(g.name, g.approved, g.proposed, g.rejected) for g in rows]


def balance_warnings(
    counts: list[GenreCount], min_approved: int = MIN_APPROVED, max_ratio: float = MAX_RATIO
) -> list[str]:
    """What is wrong with the approved set; genres without any sample are not in the dataset."""
    used = [c for c in counts if c.total]
    warnings = [
        f"{c.genre}: only {c.approved} approved sample{'s' if c.approved != 1 else ''} "
        f"(fewer than {min_approved}: too small to train)"
        for c in used
        if c.approved < min_approved
    ]
    approved = [c for c in used if c.approved]
    if len(approved) >= 2:
        big = max(approved, key=lambda c: c.approved)
        small = min(approved, key=lambda c: c.approved)
        if big.approved > max_ratio * small.approved:
            warnings.append(
                f"unbalanced: {big.genre} has {big.approved} approved samples, "
                f"{small.genre} only {small.approved} (more than {max_ratio:g}x)"
            )
    if len(approved) < 2:
        warnings.append("a training run needs approved samples of at least two genres")
    return warnings
