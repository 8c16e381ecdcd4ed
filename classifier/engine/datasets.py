"""The three labelled sources the default head is trained on, as taxonomy labels.

- GTZAN (`data/gtzan_mini/<genre>/`): one genre per clip; its artists follow the file numbering.
- mer4q (`data/mer4q/labels.csv`): AllMusic genres, 1-5 per clip, editorial and noisy;
  "Pop/Rock" says Pop or Rock without saying which: an ambiguous label.
- emotify (`data/emotify/labels.csv`): Magnatune's genre tag of the track plus Emotify's folder
  (classical, electronic, pop, rock; its "pop" is mostly alternative rock, so it adds nothing).

Each clip becomes a LabelledClip: the genres that apply (with their parents), the sets of
which at least one applies, the artist group, and the class it is judged by in its source's
figures (None when the clip is not judged there).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from classifier.engine.registry import PACKAGE_DIR
from classifier.engine.taxonomy import Taxonomy, load_taxonomy

SOURCES = ("gtzan", "mer4q", "emotify")
# mer4q's single-genre clips are judged on these AllMusic genres (Pop/Rock: Pop or Rock).
MER4Q_JUDGED = (
    "Rap",
    "Country",
    "Jazz",
    "Blues",
    "Reggae",
    "R&B",
    "Latin",
    "Electronic",
    "Pop/Rock",
)
MER4Q_POP_ROCK = "Pop/Rock"
# emotify is judged on Magnatune's tag as one of three top-level genres.
EMOTIFY_JUDGED = ("Classical", "Electronic", "Rock")
EMOTIFY_FOLDERS = {"classical": "Classical", "electronic": "Electronic", "rock": "Rock"}


@dataclass(frozen=True)
class LabelledClip:
    path: Path
    source: str
    group: str  # the artist (GTZAN: its genre; folds follow its numbering instead)
    positives: frozenset[str]  # genres that apply, parents included
    any_of: tuple[frozenset[str], ...] = ()  # at least one genre of each set applies
    judged_as: str | None = None  # the class of the source's figures, None: not judged
    raw: str = ""  # the label as the source wrote it


def default_shared_dir() -> Path:
    """GENREWEB_SHARED_DIR, else `shared/` beside the repository."""
    configured = os.environ.get("GENREWEB_SHARED_DIR")
    return Path(configured) if configured else PACKAGE_DIR.parent.parent.parent / "shared"


def _labels(
    values: list[str], taxonomy: Taxonomy
) -> tuple[frozenset[str], tuple[frozenset[str], ...]]:
    positives: set[str] = set()
    any_of: list[frozenset[str]] = []
    for value in values:
        found = taxonomy.candidates(value)
        if len(found) == 1:
            positives |= taxonomy.with_ancestors(found)
        elif found:
            any_of.append(frozenset(found))
    # A set already satisfied by a positive says nothing more.
    kept = tuple(s for s in any_of if not s & positives)
    return frozenset(positives), kept


def gtzan(root: Path, taxonomy: Taxonomy | None = None) -> list[LabelledClip]:
    taxonomy = taxonomy or load_taxonomy()
    clips = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        genre = taxonomy.genre_for_tag(folder.name)
        if genre is None:
            raise ValueError(f"the GTZAN folder {folder.name!r} names no genre of the taxonomy")
        for path in sorted(folder.glob("*.*")):
            if path.suffix.lower() in {".flac", ".wav", ".au", ".mp3"}:
                clips.append(
                    LabelledClip(
                        path,
                        "gtzan",
                        f"gtzan/{folder.name}",
                        frozenset(taxonomy.with_ancestors({genre})),
                        judged_as=genre,
                        raw=folder.name,
                    )
                )
    return clips


def mer4q(root: Path, taxonomy: Taxonomy | None = None) -> list[LabelledClip]:
    taxonomy = taxonomy or load_taxonomy()
    clips = []
    with open(root / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            values = [v.strip() for v in row["genres"].split(";") if v.strip()]
            positives, any_of = _labels(values, taxonomy)
            judged = None
            if len(values) == 1 and values[0] in MER4Q_JUDGED:
                judged = (
                    values[0] if values[0] == MER4Q_POP_ROCK else taxonomy.genre_for_tag(values[0])
                )
            clips.append(
                LabelledClip(
                    root / row["file"],
                    "mer4q",
                    f"mer4q/{row['artist'].strip().lower()}",
                    positives,
                    any_of,
                    judged,
                    row["genres"],
                )
            )
    return clips


def emotify(root: Path, taxonomy: Taxonomy | None = None) -> list[LabelledClip]:
    taxonomy = taxonomy or load_taxonomy()
    clips = []
    with open(root / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            values = [row["genre"]]
            folder = EMOTIFY_FOLDERS.get(row["folder"].strip().lower())
            if folder:
                values.append(folder)
            positives, any_of = _labels(values, taxonomy)
            tagged = taxonomy.candidates(row["genre"])
            top = {taxonomy.parent_of(g) or g for g in tagged}
            judged = next(iter(top)) if len(top) == 1 and top <= set(EMOTIFY_JUDGED) else None
            clips.append(
                LabelledClip(
                    root / row["file"],
                    "emotify",
                    f"emotify/{row['artist'].strip().lower()}",
                    positives,
                    any_of,
                    judged,
                    f"{row['folder']}: {row['genre']}",
                )
            )
    return clips


def all_sources(shared: Path, taxonomy: Taxonomy | None = None) -> list[LabelledClip]:
    """Every clip of the three sources under `shared`/data, in a stable order."""
    data = shared / "data"
    missing = [name for name in ("gtzan_mini", "mer4q", "emotify") if not (data / name).is_dir()]
    if missing:
        raise FileNotFoundError(f"{data} lacks {', '.join(missing)}")
    return (
        gtzan(data / "gtzan_mini", taxonomy)
        + mer4q(data / "mer4q", taxonomy)
        + emotify(data / "emotify", taxonomy)
    )
