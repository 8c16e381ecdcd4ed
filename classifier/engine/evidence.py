"""What a file's own tags say about its genres, album and artist: the evidence fusion weighs.

A raw genre value is split on the separators taggers use (NUL, ';', and ',' or '/' where the
parts are genres but the whole is not a known spelling, so "R&B/Soul" and "Pop/Rock" stay one
value and "AC/DC" is not cut in two), and each part is mapped through the taxonomy: one genre,
a set of candidates (an ambiguous spelling such as "Pop/Rock"), or none. An unknown spelling
is kept as written and reported, never dropped or rewritten. The work is bounded whatever the
file holds: so many characters and values are read, the rest counted in a note.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from classifier.engine.errors import EngineError
from classifier.engine.filetags import TagInfo, read_tags
from classifier.engine.taxonomy import Taxonomy, load_taxonomy, normalise

MAX_VALUES = 64  # genre values looked at per file; real files hold a handful
MAX_FIELD_CHARS = 4_096  # characters of one raw value that are split and mapped
MAX_VALUE_CHARS = 200  # a part longer than this is no genre name: kept, shortened, unknown
# The note of a file whose genre tags Genreweb wrote (its provenance says so).
GENREWEB_TAGS_NOTE = "the genre tags were written by Genreweb: not counted as evidence"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Splitting on these is tried only where the whole is not a spelling the taxonomy knows.
_SOFT_SEPARATORS = (",", "/")


@dataclass(frozen=True)
class GenreValue:
    raw: str  # the value as the file spells it (an absurdly long one shortened, with "…")
    genres: frozenset[str]  # the taxonomy genres it may mean: one, several (ambiguous) or none

    @property
    def known(self) -> bool:
        return bool(self.genres)

    @property
    def ambiguous(self) -> bool:
        return len(self.genres) > 1


@dataclass
class TrackEvidence:
    """A file's genre values (mapped), and who and what album it belongs to."""

    values: list[GenreValue] = field(default_factory=list)
    artist: str | None = None
    album: str | None = None
    album_artist: str | None = None
    notes: list[str] = field(default_factory=list)  # what was left unread, and why

    def genre_sets(self) -> list[frozenset[str]]:
        """The candidate set of every value that maps to the taxonomy."""
        return [v.genres for v in self.values if v.known]

    def sets_for(
        self, genres: Collection[str], taxonomy: Taxonomy | None = None
    ) -> list[frozenset[str]]:
        """genre_sets in the genres a head knows: a style it lacks counts as its parent
        (Hard Rock as Rock); a value naming none of them is left out."""
        return restrict(self.genre_sets(), genres, taxonomy)

    def unknown(self) -> list[str]:
        """The values the taxonomy does not know, as written."""
        return [v.raw for v in self.values if not v.known]

    def album_key(self, folder: str | None = None) -> tuple[str, str] | None:
        """Which album the track is on: (album artist, else `folder`, else artist; album name),
        compared loosely; None where the album name is empty."""
        album = _key_text(self.album)
        if not album:
            return None
        owner = _key_text(self.album_artist) or folder or _key_text(self.artist)
        return (owner or "", album)

    def artist_key(self) -> str | None:
        return _key_text(self.artist) or None


def restrict(
    sets: list[frozenset[str]], genres: Collection[str], taxonomy: Taxonomy | None = None
) -> list[frozenset[str]]:
    """Candidate sets in the genres of `genres` (see TrackEvidence.sets_for)."""
    taxonomy = taxonomy or load_taxonomy()
    kept = []
    for names in sets:
        mapped = frozenset(_known_as(n, genres, taxonomy) for n in names) - {""}
        if mapped:
            kept.append(mapped)
    return kept


def _known_as(name: str, genres: Collection[str], taxonomy: Taxonomy) -> str:
    if name in genres:
        return name
    parent = taxonomy.parent_of(name) if name in taxonomy else None
    return parent if parent is not None and parent in genres else ""


def _key_text(value: str | None) -> str:
    return " ".join((value or "").casefold().split())


# ---------------------------------------------------------------- genre values


def parse_genres(raw_values: list[str], taxonomy: Taxonomy | None = None) -> list[GenreValue]:
    """Every genre value of `raw_values`, split and mapped, in order, duplicates once;
    at most MAX_VALUES (parse_genres_noted says how many more there were)."""
    return parse_genres_noted(raw_values, taxonomy)[0]


def parse_genres_noted(
    raw_values: list[str], taxonomy: Taxonomy | None = None
) -> tuple[list[GenreValue], list[str]]:
    """parse_genres, with notes on what the bounds left unread."""
    taxonomy = taxonomy or load_taxonomy()
    notes: list[str] = []
    parts: list[str] = []
    for n, value in enumerate(raw_values):
        if len(parts) >= MAX_VALUES:
            notes.append(f"{len(raw_values) - n} more genre values were not read")
            break
        if len(value) > MAX_FIELD_CHARS:
            notes.append(f"a genre value of {len(value):,} characters was read in part")
            value = value[:MAX_FIELD_CHARS]
        parts.extend(split_value(value, taxonomy))
    if len(parts) > MAX_VALUES:
        notes.append(f"{len(parts) - MAX_VALUES} more genre values were not read")
    return _unique_values(parts[:MAX_VALUES], taxonomy), notes


def split_value(value: str, taxonomy: Taxonomy) -> list[str]:
    """One raw value cut into the genre names it holds (see the module's docstring)."""
    found: list[str] = []
    for piece in re.split(r"[\x00;]", value):
        found.extend(_split_soft(piece.strip(), taxonomy, 0))
    return [p for p in found if p]


def _split_soft(piece: str, taxonomy: Taxonomy, level: int) -> list[str]:
    if not piece or level >= len(_SOFT_SEPARATORS) or taxonomy.is_known_spelling(piece):
        return [piece]
    separator = _SOFT_SEPARATORS[level]
    parts = [p.strip() for p in piece.split(separator) if p.strip()]
    if len(parts) > 1 and any(taxonomy.is_known_spelling(p) for p in parts):
        return [q for p in parts for q in _split_soft(p, taxonomy, level + 1)]
    return _split_soft(piece, taxonomy, level + 1)


def _unique_values(parts: list[str], taxonomy: Taxonomy) -> list[GenreValue]:
    seen: set[str] = set()
    values = []
    for part in parts:
        shown = _shown(part)
        key = normalise(part) or shown.casefold()
        if key in seen:
            continue
        seen.add(key)
        genres = frozenset() if len(part) > MAX_VALUE_CHARS else taxonomy.candidates(part)
        values.append(GenreValue(shown, genres))
    return values


def _shown(part: str) -> str:
    # Control characters would garble a terminal or a JSON consumer's display.
    text = _CONTROL.sub("\ufffd", part)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


# ---------------------------------------------------------------- from a file


def evidence_from_tags(info: TagInfo, taxonomy: Taxonomy | None = None) -> TrackEvidence:
    """The evidence of read tags. Genres that Genreweb itself wrote (their provenance says
    so) are no evidence: they are its own earlier verdict, and would only echo it."""
    if "model" in info.provenance:
        values: list[GenreValue] = []
        notes = [GENREWEB_TAGS_NOTE]
    else:
        values, notes = parse_genres_noted(info.genres, taxonomy)
    return TrackEvidence(
        values=values,
        artist=_clean(info.artist),
        album=_clean(info.album),
        album_artist=_clean(info.album_artist),
        notes=notes,
    )


def read_evidence(
    path: str | os.PathLike[str],
    taxonomy: Taxonomy | None = None,
    *,
    handle: BinaryIO | None = None,
) -> TrackEvidence:
    """The evidence of `path`'s tags; a file whose tags cannot be read has none, with a note
    saying why (the audio's verdict stands alone). `handle`: the file already open (see
    read_tags)."""
    try:
        info = read_tags(path, handle=handle)
    except EngineError as exc:
        return TrackEvidence(notes=[f"tags not read: {exc}"])
    except Exception as exc:  # a damaged tag must never cost the verdict
        return TrackEvidence(notes=[f"tags not read: {Path(path).name}: {type(exc).__name__}"])
    return evidence_from_tags(info, taxonomy)


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = _CONTROL.sub("", value).strip()[:MAX_VALUE_CHARS]
    return text or None
