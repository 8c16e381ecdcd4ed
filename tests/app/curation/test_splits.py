"""The automatic split: artists on one side, pinned samples where staff put them."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from classifier.curation.services.splits import SplitItem, assign_splits


def items_of(
    genre: str, artists: list[str], start: int = 0, split: str = "auto"
) -> list[SplitItem]:
    return [
        SplitItem(start + n, genre, artist, f"{genre}.{n:05d}.flac", split)
        for n, artist in enumerate(artists)
    ]


def sides_by_artist(items: list[SplitItem], sides: dict[int, str]) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for item in items:
        if item.artist:
            seen[item.artist].add(sides[item.key])
    return seen


@pytest.mark.parametrize("seed", range(6))
def test_an_artist_never_spans_train_and_validation(seed):
    items = (
        items_of("rock", ["a", "a", "a", "b", "b", "c", "d", "d"], 0)
        + items_of("jazz", ["e", "e", "f", "g", "g", "g", "h"], 100)
        + items_of("pop", ["a", "i", "i", "j", "k"], 200)
    )  # artist a in two genres
    sides = assign_splits(items, 0.25, seed)
    assert set(sides) == {i.key for i in items}
    for artist, used in sides_by_artist(items, sides).items():
        assert len(used) == 1, f"{artist} is on both sides"
    per_genre = Counter((i.genre, sides[i.key]) for i in items)
    for genre in ("rock", "jazz", "pop"):
        assert per_genre[(genre, "validation")] >= 1
        assert per_genre[(genre, "train")] >= 1


def test_validation_share_is_near_the_fraction():
    items = items_of("rock", [f"r{n}" for n in range(20)]) + items_of(
        "jazz", [f"j{n}" for n in range(20)], 100
    )
    sides = assign_splits(items, 0.25, 0)
    assert Counter(sides.values()) == {"train": 30, "validation": 10}


def test_unknown_artists_are_grouped_by_neighbouring_numbers():
    # GTZAN style: no artist, numbered files; held-out clips form one contiguous block.
    items = items_of("blues", [""] * 8) + items_of("metal", [""] * 8, 100)
    sides = assign_splits(items, 0.25, 3)
    for genre in ("blues", "metal"):
        held = sorted(
            i.key % 100 for i in items if i.genre == genre and sides[i.key] == "validation"
        )
        assert len(held) == 2
        assert held[1] - held[0] == 1


def test_pinned_samples_stay_and_their_artist_follows():
    items = items_of("rock", ["a", "a", "b", "c", "d"]) + [
        SplitItem(50, "rock", "a", "x.flac", "validation"),
        SplitItem(51, "rock", "b", "y.flac", "test"),
        SplitItem(52, "rock", "", "z.flac", "train"),
    ]
    sides = assign_splits(items, 0.25, 0)
    assert sides[50] == "validation" and sides[51] == "test" and sides[52] == "train"
    # Artist a's automatic samples go where their pinned sample is.
    assert sides[0] == sides[1] == "validation"


def test_a_genre_of_one_artist_cannot_be_split_and_stays_in_training():
    items = items_of("rock", ["solo"] * 4) + items_of("jazz", ["p", "q", "r", "s"], 100)
    sides = assign_splits(items, 0.25, 0)
    assert {sides[i.key] for i in items if i.genre == "rock"} == {"train"}
    assert Counter(sides[i.key] for i in items if i.genre == "jazz")["validation"] == 1


def test_the_split_is_reproducible_for_a_seed():
    items = items_of("rock", list("aabbccddeeff")) + items_of("jazz", list("gghhiijjkk"), 100)
    assert assign_splits(items, 0.3, 7) == assign_splits(items, 0.3, 7)
