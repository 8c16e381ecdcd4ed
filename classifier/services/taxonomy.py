"""The genres the library speaks of: the active model's taxonomy, its spellings and colours.

The library filter, the chart, the API's validation and the pages all ask here, so a
promoted head with a genre of its own shows everywhere at once. Which genre a style belongs
to is the curated genre table's say (staff edit it; it is seeded from the engine's
taxonomy.json), then the head's, then taxonomy.json's.
"""

from __future__ import annotations

import colorsys
import hashlib
import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.apps import apps
from django.db import DatabaseError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from classifier.engine import taxonomy as engine_taxonomy
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
    "electronic": "#1f9bd1",
    "folk": "#8a9a3b",
    "hiphop": "#2aa198",
    "jazz": "#b5892f",
    "latin": "#e2a11b",
    "metal": "#5b6470",
    "pop": "#f06b4f",
    "randbsoul": "#a14f9e",
    "reggae": "#4caf50",
    "rock": "#c0392b",
    "world": "#c96d3a",
    UNCERTAIN: UNCERTAIN_COLOUR,
}


@dataclass(frozen=True)
class Taxonomy:
    genres: tuple[str, ...]  # the model's genre names, in its output order
    spelling: dict[str, str] = field(default_factory=dict)  # name -> how files spell it
    parents: dict[str, str] = field(default_factory=dict)  # style -> its genre

    def family(self, genre: str) -> set[str]:
        """The genre and every style below it: what filtering by it finds."""
        return {genre} | {style for style, parent in self.parents.items() if parent == genre}

    def parent(self, genre: str) -> str | None:
        return self.parents.get(genre)

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
    """The active model's taxonomy (re-read only when the active head file changes), with
    the curated genre table's parents and tag spellings."""
    path = _active_head()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = 0
    parents, spellings = curated()
    base = _taxonomy_of(path, stamp)
    return Taxonomy(base.genres, {**base.spelling, **spellings}, {**base.parents, **parents})


# current() is asked for every genre label of a page: the genre table (and which head is
# active) is read once, then again when a row of it is saved or deleted here, and at least
# every few seconds (edits made in another process).
CURATED_TTL = 5.0
_curated: tuple[float, tuple[dict[str, str], dict[str, str]]] | None = None


def curated() -> tuple[dict[str, str], dict[str, str]]:
    """(style -> genre, genre -> tag spelling) as staff curated them; empty where curation is
    not installed or its table not migrated yet (the head's own taxonomy then holds)."""
    global _curated
    now = time.monotonic()
    if _curated is None or now - _curated[0] > CURATED_TTL:
        _curated = (now, _read_curated())
    return _curated[1]


_head: tuple[float, Path] | None = None


def _active_head() -> Path:
    """The active head's path, asked of the database once every few seconds (and again when
    a head is promoted here), not for every genre label of a page."""
    global _head
    now = time.monotonic()
    if _head is None or now - _head[0] > CURATED_TTL:
        _head = (now, head_path())
    return _head[1]


@receiver([post_save, post_delete], sender="curation.Genre")
def forget_curated(**_: object) -> None:
    global _curated, _head
    _curated = None
    _head = None


@receiver([post_save, post_delete], sender="curation.ModelVersion")
@receiver([post_save, post_delete], sender="curation.Promotion")
def forget_head(**_: object) -> None:
    global _head
    _head = None


def _read_curated() -> tuple[dict[str, str], dict[str, str]]:
    if not apps.is_installed("classifier.curation"):
        return {}, {}
    genre_model = apps.get_model("curation", "Genre")
    try:
        rows = list(genre_model.objects.values_list("name", "parent__name", "tag_spelling"))
    except DatabaseError:
        return {}, {}
    parents = {name: parent for name, parent, _ in rows if parent}
    return parents, {name: spelling for name, _, spelling in rows if spelling}


def tag_spellings() -> dict[str, str]:
    """How each genre is written into files: the head's spellings, as staff curated them."""
    return current().spelling


@lru_cache(maxsize=8)
def _taxonomy_of(path: Path, stamp: int) -> Taxonomy:
    try:
        info = read_head_info(path)
    except ModelError as exc:
        log.error("no taxonomy from %s: %s", path, exc)
        return Taxonomy(genres=())
    known = engine_taxonomy.load_taxonomy()
    parents = {g.name: g.parent for g in known.genres if g.parent}  # older verdicts' too
    return Taxonomy(
        genres=tuple(info.genres),
        spelling=dict(info.tag_spelling),
        parents={**parents, **info.parents},
    )


def genre_colour(genre: str) -> str:
    """A colour for any genre name, stable across pages, pictures and runs."""
    if not genre:
        return UNCERTAIN_COLOUR
    key = engine_taxonomy.normalise(genre)
    if key in KNOWN_COLOURS:
        return KNOWN_COLOURS[key]
    known = engine_taxonomy.load_taxonomy()
    parent = known.parent_of(genre) if genre in known else None
    if parent:  # a style: a shade of its genre's colour
        return _shade(genre_colour(parent), genre)
    hue = int.from_bytes(hashlib.sha256(genre.encode()).digest()[:2], "big") / 65536
    red, green, blue = colorsys.hls_to_rgb(hue, 0.5, 0.55)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def _shade(colour: str, name: str) -> str:
    """`colour` lighter or darker by an amount drawn from `name` (styles of one genre differ)."""
    red, green, blue = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    hue, light, sat = colorsys.rgb_to_hls(red, green, blue)
    step = int.from_bytes(hashlib.sha256(name.encode()).digest()[:1], "big") / 255
    light = min(0.8, max(0.25, light + (step - 0.5) * 0.4))
    red, green, blue = colorsys.hls_to_rgb(hue, light, sat)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
