"""Train/validation/test assignment that keeps an artist's samples on one side.

Samples staff pinned to a split stay there. The rest are gathered into groups (one per
artist; where the artist is unknown, contiguous blocks of each genre's file numbering, as in
GTZAN nearby clips share an artist) and whole groups go to validation until each genre has
about `fraction` of its samples there.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from classifier.curation.models import normalise
from classifier.engine.training import LabelledFile, contiguous_folds

TRAIN, VALIDATION, TEST, AUTO = "train", "validation", "test", "auto"


@dataclass(frozen=True)
class SplitItem:
    key: int  # the sample's id
    genre: str  # the label it is trained with
    artist: str
    name: str  # file name, for the numbering fallback
    split: str  # auto, train, validation or test


def group_keys(items: list[SplitItem], fraction: float) -> dict[int, str]:
    """The group of every item: its artist, else a block of its genre's file numbering."""
    groups = {i.key: f"artist:{normalise(i.artist)}" for i in items if normalise(i.artist)}
    unknown = [i for i in items if i.key not in groups]
    blocks = max(2, round(1 / fraction)) if fraction > 0 else 2
    files = [LabelledFile(Path(i.name), i.genre, "") for i in unknown]
    for item, fold in zip(unknown, contiguous_folds(files, blocks), strict=True):
        groups[item.key] = f"block:{item.genre}:{fold}"
    return groups


def assign_splits(items: list[SplitItem], fraction: float = 0.25, seed: int = 0) -> dict[int, str]:
    """train, validation or test for every item."""
    sides = {i.key: i.split for i in items if i.split in (TRAIN, VALIDATION, TEST)}
    groups = group_keys(items, fraction)
    members: dict[str, list[SplitItem]] = defaultdict(list)
    for item in items:
        members[groups[item.key]].append(item)

    free = []
    for group, its in members.items():
        pinned = Counter(sides[i.key] for i in its if i.key in sides and sides[i.key] != TEST)
        if pinned:
            # The unpinned samples of a group follow its pinned ones.
            side = pinned.most_common(1)[0][0]
            for item in its:
                sides.setdefault(item.key, side)
        elif any(i.key not in sides for i in its):
            free.append(group)

    in_play = [i for i in items if sides.get(i.key) != TEST]
    total = Counter(i.genre for i in in_play)
    target = {g: _target(n, fraction) for g, n in total.items()}
    held = Counter(i.genre for i in in_play if sides.get(i.key) == VALIDATION)

    random.Random(seed).shuffle(free)
    leftover = []
    for group in free:
        counts = _open(members[group], sides)
        fits = all(held[g] + n <= target[g] for g, n in counts.items())
        wanted = any(held[g] < target[g] for g in counts)
        if fits and wanted:
            _place(members[group], sides, VALIDATION)
            held.update(counts)
        else:
            leftover.append(group)
    # A genre whose groups were all too big still gets its smallest group validated,
    # as long as that leaves it a training sample.
    for genre in sorted(g for g in target if target[g] and not held[g]):
        options = [
            grp
            for grp in leftover
            if _open(members[grp], sides)[genre]
            and all(total[g] - held[g] - n >= 1 for g, n in _open(members[grp], sides).items())
        ]
        if options:
            group = min(options, key=lambda grp: (sum(_open(members[grp], sides).values()), grp))
            leftover.remove(group)
            held.update(_open(members[group], sides))
            _place(members[group], sides, VALIDATION)
    for group in leftover:
        _place(members[group], sides, TRAIN)
    return sides


def _target(count: int, fraction: float) -> int:
    """Validation samples wanted of a genre: at least one, never all of them."""
    if count < 2 or fraction <= 0:
        return 0
    return min(count - 1, max(1, int(count * fraction + 0.5)))


def _open(items: list[SplitItem], sides: dict[int, str]) -> Counter[str]:
    """Genre counts of a group's items not yet given a side."""
    return Counter(i.genre for i in items if i.key not in sides)


def _place(items: list[SplitItem], sides: dict[int, str], side: str) -> None:
    for item in items:
        sides.setdefault(item.key, side)
