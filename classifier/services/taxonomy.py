"""The genres the library speaks of: the active model's taxonomy, its spellings and colours.

The library filter, the chart, the API's validation and the pages all ask here, so a
promoted head with a genre of its own shows everywhere at once.
"""

from __future__ import annotations

import colorsys
import hashlib
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from classifier.engine.errors import ModelError
from classifier.engine.head import read_head_info
from classifier.services.active_model import head_path

log = logging.getLogger(__name__)

UNCERTAIN = "uncertain"
UNCERTAIN_COLOUR = "#a0a7b4"
# The bundled genres keep the colours people know from the charts; any other genre gets a
# colour of its own derived from its name (the same on every page and every run).
KNOWN_COLOURS: dict[str, str] = {
    "blues": "#3b6fd8",
    "classical": "#8f6bd6",
    "country": "#d08a2c",
    "disco": "#e0579b",
    "hiphop": "#2aa198",
    "jazz": "#b5892f",
    "metal": "#5b6470",
    "pop": "#f06b4f",
    "reggae": "#4caf50",
    "rock": "#c0392b",
    UNCERTAIN: UNCERTAIN_COLOUR,
}


@dataclass(frozen=True)
class Taxonomy:
    genres: tuple[str, ...]  # the model's genre names, in its output order
    spelling: dict[str, str] = field(default_factory=dict)  # name -> how files spell it

    def label(self, genre: str) -> str:
        """How a person reads the genre: its tag spelling."""
        if genre == UNCERTAIN:
            return "Uncertain"
        return self.spelling.get(genre) or genre.title()

    def choices(self) -> list[tuple[str, str]]:
        """(name, label) of every genre, then "uncertain": for filters and validation."""
        return [(g, self.label(g)) for g in self.genres] + [(UNCERTAIN, "Uncertain")]

    def ordered(self, genres: set[str]) -> list[str]:
        """`genres` in the model's order, genres it does not know (older models') after."""
        return [g for g in self.genres if g in genres] + sorted(genres - set(self.genres))


def current() -> Taxonomy:
    """The active model's taxonomy (re-read only when the active head file changes)."""
    path = head_path()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _taxonomy_of(path, stamp)


@lru_cache(maxsize=8)
def _taxonomy_of(path: Path, stamp: int) -> Taxonomy:
    try:
        info = read_head_info(path)
    except ModelError as exc:
        log.error("no taxonomy from %s: %s", path, exc)
        return Taxonomy(genres=())
    return Taxonomy(genres=tuple(info.genres), spelling=dict(info.tag_spelling))


def genre_colour(genre: str) -> str:
    """A colour for any genre name, stable across pages, pictures and runs."""
    if not genre:
        return UNCERTAIN_COLOUR
    if genre in KNOWN_COLOURS:
        return KNOWN_COLOURS[genre]
    hue = int.from_bytes(hashlib.sha256(genre.encode()).digest()[:2], "big") / 65536
    red, green, blue = colorsys.hls_to_rgb(hue, 0.5, 0.55)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
