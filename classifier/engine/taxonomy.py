"""The genre taxonomy: top-level genres, their styles, and every spelling that names them.

The facts live in taxonomy.json beside this module (the one source: the engine trains and
reports with it, the web app seeds its genres from it); this module loads and queries it.
A raw tag value, however spelled ("Hip Hop", "hip-hop", "(7)", "7", "R&B", "Alt. Rock"),
maps to one genre or to none; a few spellings are ambiguous ("Pop/Rock": Pop or Rock,
AllMusic does not say which) and map to a set of candidates of which at least one applies.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

TAXONOMY_FILE = Path(__file__).resolve().parent / "taxonomy.json"
_ID3_NUMBER = re.compile(r"^\(?(\d{1,3})\)?$")
_ID3_PREFIX = re.compile(r"^\((\d{1,3})\)(.+)$")  # "(17)Rock": ID3v2.3's number-then-name


@dataclass(frozen=True)
class Genre:
    name: str
    tag_spelling: str  # how the genre is written into a file's tags
    parent: str | None  # None for a top-level genre
    aliases: tuple[str, ...] = ()


def normalise(value: str) -> str:
    """The key a spelling is matched by: lower case, '&', '+' and "'n'" as 'and', then only
    letters and digits ("Hip Hop", "hip-hop" and "HipHop" are one key)."""
    text = value.strip().lower().replace("’", "'")
    text = text.replace("&", " and ").replace("+", " and ").replace("'n'", " and ")
    return re.sub(r"[^0-9a-z]+", "", text)


class Taxonomy:
    """The genres of taxonomy.json and the lookups over them."""

    def __init__(self, data: dict[str, object]) -> None:
        genres = data["genres"]
        assert isinstance(genres, list)
        self.version = str(data.get("version", ""))
        self.genres: tuple[Genre, ...] = tuple(
            Genre(g["name"], g["tag_spelling"], g["parent"], tuple(g.get("aliases", ())))
            for g in genres
        )
        self._by_name = {g.name: g for g in self.genres}
        if len(self._by_name) != len(self.genres):
            raise ValueError("taxonomy.json names a genre twice")
        for genre in self.genres:
            if genre.parent is not None and (
                genre.parent not in self._by_name or self._by_name[genre.parent].parent is not None
            ):
                raise ValueError(f"{genre.name}'s parent {genre.parent!r} is not a top-level genre")
        ambiguous = data.get("ambiguous", {})
        assert isinstance(ambiguous, dict)
        unmapped = data.get("unmapped", [])
        id3v1 = data.get("id3v1", [])
        assert isinstance(unmapped, list) and isinstance(id3v1, list)
        self.id3v1: tuple[str, ...] = tuple(id3v1)
        self._lookup: dict[str, frozenset[str]] = {}
        for genre in self.genres:
            for spelling in (genre.name, genre.tag_spelling, *genre.aliases):
                self._add(spelling, frozenset([genre.name]))
        for spelling, names in ambiguous.items():
            unknown = set(names) - set(self._by_name)
            if unknown:
                raise ValueError(f"ambiguous spelling {spelling!r} names unknown {sorted(unknown)}")
            self._add(spelling, frozenset(names))
        for spelling in unmapped:
            self._add(spelling, frozenset())

    def _add(self, spelling: str, names: frozenset[str]) -> None:
        key = normalise(spelling)
        if key in self._lookup and self._lookup[key] != names:
            raise ValueError(f"the spelling {spelling!r} means two things in taxonomy.json")
        self._lookup[key] = names

    # ------------------------------------------------------------ queries

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def genre(self, name: str) -> Genre:
        return self._by_name[name]

    def parent_of(self, name: str) -> str | None:
        return self._by_name[name].parent

    def top_level(self) -> list[str]:
        return [g.name for g in self.genres if g.parent is None]

    def styles_of(self, name: str) -> list[str]:
        return [g.name for g in self.genres if g.parent == name]

    def with_ancestors(self, names: set[str] | frozenset[str]) -> set[str]:
        """The genres named and the parent of every style among them."""
        result = set(names)
        for name in names:
            parent = self._by_name[name].parent
            if parent is not None:
                result.add(parent)
        return result

    def candidates(self, value: str) -> frozenset[str]:
        """The genres a raw tag value may mean: one, several (ambiguous), or none (unknown)."""
        value = value.strip()
        prefixed = _ID3_PREFIX.match(value)
        if prefixed:  # "(17)Rock": the name decides, the number is the older spelling
            found = self._lookup.get(normalise(prefixed.group(2)))
            return found if found is not None else self._id3(int(prefixed.group(1)))
        number = _ID3_NUMBER.match(value)
        if number:
            return self._id3(int(number.group(1)))
        return self._lookup.get(normalise(value), frozenset())

    def _id3(self, number: int) -> frozenset[str]:
        if number >= len(self.id3v1):
            return frozenset()
        return self._lookup.get(normalise(self.id3v1[number]), frozenset())

    def genre_for_tag(self, value: str) -> str | None:
        """The one genre a raw tag value names, or None (unknown, or ambiguous like "Pop/Rock")."""
        found = self.candidates(value)
        return next(iter(found)) if len(found) == 1 else None

    def tag_spelling_for(self, value: str) -> str:
        """How to write a genre called `value` (e.g. a training folder's name) into tags: its
        taxonomy genre's spelling ("hiphop" -> "Hip-Hop"), else the value in title case."""
        genre = self.genre_for_tag(value)
        return self._by_name[genre].tag_spelling if genre else value.strip().title()

    def is_known_spelling(self, value: str) -> bool:
        """Whether taxonomy.json says what the value means (a genre, candidates, or nothing)."""
        value = value.strip()
        number = _ID3_NUMBER.match(value)
        if number:
            return int(number.group(1)) < len(self.id3v1)
        return normalise(value) in self._lookup


@functools.cache
def load_taxonomy(path: Path = TAXONOMY_FILE) -> Taxonomy:
    """The taxonomy of taxonomy.json (read once per process)."""
    with open(path, encoding="utf-8") as handle:
        return Taxonomy(json.load(handle))


def genre_for_tag(value: str) -> str | None:
    """The genre a raw tag value names in the shipped taxonomy, or None."""
    return load_taxonomy().genre_for_tag(value)
