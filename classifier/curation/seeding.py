"""The taxonomy (classifier/engine/taxonomy.json) as rows of the genre table.

Used by the data migration and by `manage.py seed_genres`, on whichever Genre model they
hand in (a migration's historical one or the real one), so both seed alike.

- A taxonomy genre with no row of its name gets one (name, tag spelling, aliases, parent).
- A row whose name is not a taxonomy name but means one (the old head's lower-case names:
  "hiphop", "rock") is renamed to it, so its samples keep pointing at it; where the taxonomy
  name already has a row, the old row's samples and children move there and it goes.
- A row with a taxonomy name is never changed: those are staff's to edit.
- A row that means no taxonomy genre stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from classifier.engine.taxonomy import Taxonomy, load_taxonomy


@dataclass
class SeedResult:
    added: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # old name -> taxonomy name
    merged: dict[str, str] = field(default_factory=dict)  # old name -> taxonomy name

    def summary(self) -> str:
        parts = [f"{len(self.added)} genres added"]
        parts += [f"{old} renamed {new}" for old, new in self.renamed.items()]
        parts += [f"{old} merged into {new}" for old, new in self.merged.items()]
        return "; ".join(parts)


def seed_taxonomy(genre_model: Any, taxonomy: Taxonomy | None = None) -> SeedResult:
    """Bring the taxonomy's genres into `genre_model`'s table without touching staff edits."""
    taxonomy = taxonomy or load_taxonomy()
    result = SeedResult()
    rows = {row.name: row for row in genre_model.objects.all()}
    for row in list(rows.values()):
        if row.name not in taxonomy:
            _adopt(genre_model, row, taxonomy, rows, result)
    created = []
    for genre in taxonomy.genres:
        if genre.name not in rows:
            rows[genre.name] = genre_model.objects.create(
                name=genre.name, tag_spelling=genre.tag_spelling, aliases=", ".join(genre.aliases)
            )
            created.append(genre.name)
            result.added.append(genre.name)
    # Parents once every genre has a row; only on rows this seeding made or renamed.
    for name in created + list(result.renamed.values()):
        parent = taxonomy.parent_of(name)
        row = rows[name]
        if parent is not None and row.parent_id is None:
            row.parent = rows[parent]
            row.save(update_fields=["parent"])
    return result


def _adopt(genre_model: Any, row: Any, taxonomy: Taxonomy, rows: dict, result: SeedResult) -> None:
    """Rename (or merge) an old row into the taxonomy genre its spellings name, if exactly one."""
    target = _meaning(row, taxonomy)
    if target is None:
        return
    old = row.name
    existing = rows.get(target)
    if existing is not None:
        _merge(genre_model, row, existing)
        del rows[old]
        result.merged[old] = target
        return
    genre = taxonomy.genre(target)
    extra = [a for a in _aliases(row.aliases) + [old] if taxonomy.genre_for_tag(a) != target]
    row.name, row.tag_spelling = target, genre.tag_spelling
    row.aliases = ", ".join([*genre.aliases, *extra])
    row.save(update_fields=["name", "tag_spelling", "aliases"])
    del rows[old]
    rows[target] = row
    result.renamed[old] = target


def _meaning(row: Any, taxonomy: Taxonomy) -> str | None:
    for spelling in (row.name, row.tag_spelling):
        found = taxonomy.genre_for_tag(spelling)
        if found is not None:
            return found
    return None


def _merge(genre_model: Any, old: Any, into: Any) -> None:
    for sample in old.samples.all():
        sample.genres.add(into)
    genre_model.objects.filter(parent=old).update(parent=into)
    old.delete()


def _aliases(text: str) -> list[str]:
    return [a.strip() for a in text.split(",") if a.strip()]
