"""Queries over a user's library: filtering, search, sorting and the genre distribution."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Count, F, OrderBy, Q, QuerySet
from django.db.models.functions import Lower

from classifier.models import Status, Track, sort_title
from classifier.services import review as review_queue
from classifier.services import taxonomy
from classifier.services.taxonomy import UNCERTAIN

# What the library can be sorted by: the choice's name -> the ordering it stands for.
SORTS: dict[str, tuple[str, ...]] = {
    "added": ("-created_at", "-id"),
    "title": ("sort_title", "id"),
    "artist": ("sort_artist", "sort_title", "id"),
    "album": ("sort_album", "sort_title", "id"),
    "duration": ("duration", "id"),
    "genre": ("primary_genre", "-confidence", "id"),
    "confidence": ("-confidence", "id"),
}
# The `missing` filter value that lists vanished folder files too.
SHOW_MISSING = "show"

SORT_LABELS = {
    "added": "Newest",
    "title": "Title",
    "artist": "Artist",
    "album": "Album",
    "duration": "Duration",
    "genre": "Genre",
    "confidence": "Confidence",
}


def genre_choices() -> list[tuple[str, str]]:
    """The genres a library can be filtered by: the active model's, and "uncertain"."""
    return taxonomy.current().choices()


def filter_tracks(
    tracks: QuerySet[Track],
    *,
    q: str = "",
    genre: str = "",
    status: str = "",
    sort: str = "added",
    review: str = "",
    source: str = "",
    missing: str = "",
    folder: str = "",
) -> QuerySet[Track]:
    """The tracks matching a search, a genre and a status, in the chosen order; with
    `review` (review.DISAGREES, review.UNCERTAIN), the tracks still to review of that kind,
    the strongest case first.

    A folder file that vanished is left out unless `missing` is SHOW_MISSING (its row is
    kept so that it comes back with its verdict if it reappears); `source` keeps only
    uploads or only folder files, `folder` (an id) only that library folder's files.

    Unknown values of genre/status/sort are the caller's to refuse; here they select nothing
    (genre, status) or fall back to the newest first (sort).
    """
    if q:
        words = q.split()
        for word in words[:8]:
            tracks = tracks.filter(
                Q(title__icontains=word)
                | Q(artist__icontains=word)
                | Q(album__icontains=word)
                | Q(original_name__icontains=word)
                | Q(primary_genre__icontains=word)
            )
    if genre == UNCERTAIN:
        tracks = tracks.filter(status=Status.DONE, uncertain=True)
    elif genre:
        tracks = tracks.filter(genre_matches(genre))
    if status:
        tracks = tracks.filter(status=status)
    if source:
        tracks = tracks.filter(source=source)
    if folder:
        tracks = tracks.filter(folder_id=int(folder))
    if missing != SHOW_MISSING:
        tracks = tracks.filter(missing=False)
    if review:
        return review_queue.queue(tracks, review)
    return _sorted(tracks, sort)


def genre_matches(genre: str) -> Q:
    """Tracks given the genre or one of its styles (Electronic finds House), as any of their
    genres, not only the first."""
    family = taxonomy.current().family(genre)
    match = Q(primary_genre__in=family)
    for name in sorted(family):
        match |= Q(genre_index__contains=f"|{name}|")
    return match


def _sorted(tracks: QuerySet[Track], sort: str) -> QuerySet[Track]:
    descending = sort.startswith("-")
    fields = SORTS.get(sort.lstrip("-"), SORTS["added"])
    tracks = tracks.annotate(
        sort_title=sort_title(),
        sort_artist=Lower("artist"),
        sort_album=Lower("album"),
    )
    return tracks.order_by(*(_order(field, descending) for field in fields))


def _order(field: str, flip: bool) -> OrderBy:
    """Ascending or descending by `field` ("-" prefix: descending), unanalysed rows last.

    Only a column that can be empty says where its nulls go: ordered plainly, the others
    are read in the order of an index (newest first: owner, created_at, id)."""
    desc = field.startswith("-") != flip
    name = field.lstrip("-")
    expression = F(name)
    if not _nullable(name):
        return expression.desc() if desc else expression.asc()
    return expression.desc(nulls_last=True) if desc else expression.asc(nulls_last=True)


def _nullable(name: str) -> bool:
    try:
        return bool(Track._meta.get_field(name).null)
    except FieldDoesNotExist:  # an annotation (sort_title...): made of columns never null
        return False


@dataclass(frozen=True)
class GenreCount:
    genre: str
    label: str
    count: int
    share: float  # of the analysed tracks, 0..1


def genre_distribution(tracks: QuerySet[Track]) -> list[GenreCount]:
    """How many analysed tracks have each primary genre, most common first (vanished folder
    files left out, as the library list leaves them out)."""
    return summarise(tracks).distribution


@dataclass(frozen=True)
class Group:
    """Tracks alike in what the library page counts: how many there are."""

    status: str
    missing: bool
    source: str
    primary_genre: str
    model_version: str
    count: int


@dataclass(frozen=True)
class LibrarySummary:
    """What the library page says of all of a user's tracks, read in one grouped query."""

    groups: list[Group]

    @property
    def total(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def busy(self) -> int:
        """Tracks waiting for their analysis or being analysed (missing ones too)."""
        return sum(g.count for g in self.groups if g.status in (Status.PENDING, Status.PROCESSING))

    def outdated(self, current_model: str | None) -> int:
        """Analysed tracks whose verdict another model than `current_model` made (as
        curation's tracks_from_older_versions counts them)."""
        return sum(
            g.count
            for g in self.groups
            if g.status == Status.DONE
            and g.model_version
            and (current_model is None or g.model_version != current_model)
        )

    @property
    def distribution(self) -> list[GenreCount]:
        rows: dict[str, int] = {}
        for g in self.groups:
            if g.status == Status.DONE and not g.missing:
                genre = g.primary_genre or UNCERTAIN
                rows[genre] = rows.get(genre, 0) + g.count
        total = sum(rows.values())
        names = taxonomy.current()
        counts = [GenreCount(g, names.label(g), n, n / total) for g, n in rows.items()]
        return sorted(counts, key=lambda c: (-c.count, c.genre))

    def matching(self, filters: dict[str, str]) -> int | None:
        """How many tracks filter_tracks(**filters) lists, where the groups tell (filters by
        status, source and missing files only); None where it takes a query (a search, a
        genre, a review queue, one folder)."""
        if any(filters.get(key) for key in ("q", "genre", "review", "folder")):
            return None
        status, source = filters.get("status", ""), filters.get("source", "")
        show_missing = filters.get("missing") == SHOW_MISSING
        return sum(
            g.count
            for g in self.groups
            if (not status or g.status == status)
            and (not source or g.source == source)
            and (show_missing or not g.missing)
        )


def summarise(tracks: QuerySet[Track]) -> LibrarySummary:
    """The tracks counted by status, missing, source, primary genre and model version (a
    few dozen groups, however large the library: one pass over an index)."""
    fields = ("status", "missing", "source", "primary_genre", "model_version")
    # COUNT(*), not of a column: the index holds every column read, the rows are not visited.
    rows = tracks.order_by().values_list(*fields).annotate(n=Count("*"))
    return LibrarySummary([Group(*row) for row in rows])
