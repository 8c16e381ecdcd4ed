"""Evidence beside the audio: a track's own genre tag, its album and its artist within the
owner's library, fused with the audio's verdict by the engine's rule (engine/fusion.py).

A track's audio verdict is stored (`Track.audio_verdict`), so when a track arrives the other
tracks of its album and artist are fused again from what is stored, without analysing their
audio. Each fusion loads the tracks it needs in one query and pools them with running sums
(engine/library.py), so an album of 500 tracks costs one pass per arrival, not 500 x 500.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.models import Count, Q, QuerySet

from classifier.engine.analysis import Analysis, GenreScore, StyleScore
from classifier.engine.evidence import (
    GENREWEB_TAGS_NOTE,
    GenreValue,
    TrackEvidence,
    parse_genres,
    read_evidence,
)
from classifier.engine.fusion import (
    Evidence,
    FusionWeights,
    agrees,
    load_weights,
    logit,
    raise_parents,
    sigmoid,
    support,
    tag_reliability,
    terms,
)
from classifier.engine.library import (
    FusedTrack,
    LibraryTrack,
    evidence_json,
    fuse_library,
    fused_analysis,
)
from classifier.models import ReviewChoice, Status, Track
from classifier.services.stored import analysis_fields, genre_index, rounded

log = logging.getLogger(__name__)

KEY_SEPARATOR = "\x1f"  # between an album's owner and its name in Track.album_key
KEPT_PROBABILITY = 0.99  # a genre of a tag the owner kept: the strongest evidence there is
# The evidence terms of each kind, for the picture of how each moved the top genres.
TERM_GROUPS = {
    "file_tag": ("tag", "tag_reliability", "tag_against"),
    "album": ("album", "album_bias", "album_untagged"),
    "artist": ("artist", "artist_bias", "artist_untagged"),
}
STEP_GENRES = 3  # how many of the final top genres the picture follows


@lru_cache(maxsize=1)
def weights() -> FusionWeights | None:
    """The bundled fusion weights; None (audio verdicts only) where they cannot be read."""
    try:
        return load_weights()
    except (OSError, ValueError, KeyError) as exc:
        log.warning("fusion weights not loaded (%s): audio verdicts only", exc)
        return None


# ---------------------------------------------------------------- the file's evidence


def file_evidence(track: Track, found: TrackEvidence | None = None) -> TrackEvidence:
    """What the stored file's tags say (`found`: as the analysis read them, in its one open
    of the file). Once Genreweb has written genres into the file they are its own verdict,
    not evidence: the genres first read from the file (stored at the first analysis) stand
    in for them, so what the user wrote is never lost."""
    found = found if found is not None else read_evidence(track.audio_path)
    if GENREWEB_TAGS_NOTE in found.notes:
        first = evidence_from_json((track.fusion or {}).get("file"))
        if first.values:
            found.values = first.values
            found.notes = [n for n in found.notes if n != GENREWEB_TAGS_NOTE]
            found.notes.append("the genres as the file first had them (Genreweb wrote since)")
    return found


def evidence_to_json(evidence: TrackEvidence) -> dict[str, Any]:
    return {
        "values": [{"raw": v.raw, "genres": sorted(v.genres)} for v in evidence.values],
        "artist": evidence.artist,
        "album": evidence.album,
        "album_artist": evidence.album_artist,
        "notes": list(evidence.notes),
    }


def evidence_from_json(data: Mapping[str, Any] | None) -> TrackEvidence:
    data = data or {}
    return TrackEvidence(
        values=[
            GenreValue(str(v.get("raw", "")), frozenset(v.get("genres", [])))
            for v in data.get("values", [])
        ],
        artist=data.get("artist"),
        album=data.get("album"),
        album_artist=data.get("album_artist"),
        notes=list(data.get("notes", [])),
    )


def album_key_of(evidence: TrackEvidence) -> str:
    key = evidence.album_key()
    return KEY_SEPARATOR.join(key)[:500] if key else ""


def artist_key_of(evidence: TrackEvidence) -> str:
    return (evidence.artist_key() or "")[:500]


# ---------------------------------------------------------------- stored audio verdicts


def audio_verdict(analysis: Analysis) -> dict[str, Any]:
    """The audio's own verdict as stored: the shape of Track.verdict, with the head's
    style -> genre map, so the track can be fused again from it alone."""
    verdict = analysis_fields(analysis)["verdict"]
    verdict["parents"] = dict(analysis.parents)
    return verdict


def analysis_from_verdict(verdict: Mapping[str, Any]) -> Analysis:
    """An Analysis rebuilt from a stored audio verdict (no timeline, no embedding)."""
    return Analysis(
        path="",
        genres=[GenreScore(g["name"], g["confidence"], g.get("parent")) for g in verdict["genres"]],
        probabilities=dict(verdict.get("probabilities", {})),
        styles=[StyleScore(s["name"], s["score"]) for s in verdict.get("styles", [])],
        chunks=int(verdict.get("chunks", 0)),
        duration=float(verdict.get("duration", 0.0)),
        model=str(verdict.get("model", "")),
        uncertain=bool(verdict.get("uncertain", False)),
        min_confidence=float(verdict.get("min_confidence", settings.GENREWEB_MIN_CONFIDENCE)),
        warnings=list(verdict.get("warnings", [])),
        parents=dict(verdict.get("parents", {})),
        novelty=verdict.get("novelty"),
    )


# ---------------------------------------------------------------- fusing


@dataclass
class Target:
    """A track to fuse: its audio verdict and its file's evidence."""

    pk: int
    audio: Analysis
    evidence: TrackEvidence
    review: str = ReviewChoice.NONE


@dataclass
class Outcome:
    analysis: Analysis  # the fused verdict (the audio's where there is no evidence)
    fields: dict[str, Any]  # the Track fields of the evidence and the flag


def fuse_targets(owner_id: int, targets: list[Target]) -> dict[int, Outcome]:
    """The fused verdict of each target, with the album and artist context of the owner's
    other analysed tracks (same head), loaded in one query."""
    found: dict[int, Outcome] = {}
    by_model: dict[str, list[Target]] = {}
    for target in targets:  # pooling needs probabilities of the same genres
        by_model.setdefault(target.audio.model, []).append(target)
    for model, group in by_model.items():
        found.update(_fuse_group(owner_id, model, group))
    return found


def _fuse_group(owner_id: int, model: str, targets: list[Target]) -> dict[int, Outcome]:
    context = _context(owner_id, model, targets)
    catalog = catalog_sets({artist_key_of(t.evidence) for t in [*targets, *context]} - {""})
    tracks = [_library_track(t, catalog) for t in targets] + [
        LibraryTrack(c.audio.probabilities, c.evidence, catalog=catalog_of(c, catalog))
        for c in context
    ]
    parents = targets[0].audio.parents
    chosen = weights()
    if chosen is None:
        fused = [FusedTrack(dict(t.audio), Evidence(), None) for t in tracks]
    else:
        r = _reliability(owner_id, targets)
        fused = fuse_library(tracks, chosen, parents, reliability=r)
    return {
        t.pk: _outcome(t, f, chosen) for t, f in zip(targets, fused[: len(targets)], strict=True)
    }


def _library_track(target: Target, catalog: Mapping[str, list[frozenset[str]]]) -> LibraryTrack:
    evidence = target.evidence
    if target.review == ReviewChoice.ACCEPT:
        # The owner said the file's tag is wrong: it no longer pulls the verdict.
        evidence = dataclasses.replace(evidence, values=[])
    return LibraryTrack(target.audio.probabilities, evidence, catalog=catalog_of(target, catalog))


def catalog_of(target: Target, catalog: Mapping[str, list[frozenset[str]]]) -> list[frozenset[str]]:
    return list(catalog.get(artist_key_of(target.evidence), []))


# An album of hundreds of artists asks the catalog about this many at most (one query).
CATALOG_ARTISTS = 200


def catalog_sets(artist_keys: set[str]) -> dict[str, list[frozenset[str]]]:
    """The catalog's word on each artist: Spotify's genres of the catalog artist of that name
    (artist key -> the taxonomy genres they may mean), where the catalog has them."""
    if not artist_keys or not apps.is_installed("recommender"):
        return {}
    match = Q()
    for key in sorted(artist_keys)[:CATALOG_ARTISTS]:
        match |= Q(name__iexact=key)
    artists = apps.get_model("recommender", "CatalogArtist").objects.filter(match)
    found: dict[str, list[frozenset[str]]] = {}
    for name, genres in artists.exclude(genres=[]).values_list("name", "genres"):
        sets = [v.genres for v in parse_genres([str(g) for g in genres[:64]]) if v.known]
        key = artist_key_of(TrackEvidence(artist=name))
        if sets and key in artist_keys:
            found.setdefault(key, sets)
    return found


def _context(owner_id: int, model: str, targets: list[Target]) -> list[Target]:
    """The owner's other analysed tracks on the targets' albums or by their artists."""
    albums = {album_key_of(t.evidence) for t in targets} - {""}
    artists = {artist_key_of(t.evidence) for t in targets} - {""}
    if not albums and not artists:
        return []
    rows = (
        Track.objects.filter(owner_id=owner_id, status=Status.DONE, model_version=model)
        .filter(Q(album_key__in=albums) | Q(artist_key__in=artists))
        .exclude(pk__in=[t.pk for t in targets])
        .exclude(audio_verdict=None)
        .values_list("pk", "audio_verdict", "fusion")
    )
    found = []
    for pk, verdict, fusion in rows:
        try:
            audio = analysis_from_verdict(verdict)
        except (KeyError, TypeError, ValueError):  # a damaged row must not cost the others
            log.warning("track %s has an unreadable audio verdict: not pooled", pk)
            continue
        found.append(Target(pk, audio, evidence_from_json((fusion or {}).get("file"))))
    return found


def _reliability(owner_id: int, targets: list[Target]) -> float:
    """r over the owner's whole library: its stored agreements, the targets' own afresh."""
    counts = (
        Track.objects.filter(owner_id=owner_id, tag_agrees__isnull=False)
        .exclude(pk__in=[t.pk for t in targets])
        .aggregate(n=Count("pk"), yes=Count("pk", filter=Q(tag_agrees=True)))
    )
    agreements = [True] * counts["yes"] + [False] * (counts["n"] - counts["yes"])
    for target in targets:
        sets = target.evidence.sets_for(list(target.audio.probabilities))
        if sets:
            agreements.append(agrees(target.audio.probabilities, sets, target.audio.parents))
    return tag_reliability(agreements)


def _outcome(target: Target, fused: FusedTrack, chosen: FusionWeights | None) -> Outcome:
    audio = target.audio
    parents = audio.parents
    sets = target.evidence.sets_for(list(audio.probabilities))
    if target.review == ReviewChoice.KEEP and sets:
        fused = dataclasses.replace(
            fused, probabilities=follow_tag(fused.probabilities, sets, parents, audio)
        )
    result = fused_analysis(audio, fused, len(audio.genres) or 3)
    sources = evidence_json(target.evidence, fused, parents)
    for entry in sources:
        if entry["source"] == "file_tag" and target.review:
            entry["review"] = target.review  # kept (the verdict follows it) or overruled
    flag = fused.flag
    return Outcome(
        result,
        {
            "evidence": sources,
            "fusion": {
                "file": evidence_to_json(target.evidence),
                "steps": steps(audio, fused, chosen, result),
            },
            "album_key": album_key_of(target.evidence),
            "artist_key": artist_key_of(target.evidence),
            "far_from_album": bool(flag and flag.far),
            "album_distance": None if flag is None else round(flag.score, 4),
            "tag_agrees": agrees(audio.probabilities, sets, parents) if sets else None,
            "disagreement": disagreement(audio, sets),
        },
    )


def follow_tag(
    probabilities: Mapping[str, float],
    sets: list[frozenset[str]],
    parents: Mapping[str, str],
    audio: Analysis,
) -> dict[str, float]:
    """A kept tag as the strongest evidence: the genres it names near certain, the genres
    it rules out below the threshold, so the verdict (and every re-fusion) follows it."""
    ruled_out = audio.min_confidence / 2
    kept = {}
    for genre, p in probabilities.items():
        if support(genre, sets, parents) > 0:
            kept[genre] = max(p, KEPT_PROBABILITY)
        elif support(parents.get(genre, ""), sets, parents) > 0:
            kept[genre] = p  # the tag names its genre, and says nothing of this style
        else:
            kept[genre] = min(p, ruled_out)
    return raise_parents(kept, dict(parents))


def disagreement(audio: Analysis, sets: list[frozenset[str]]) -> float | None:
    """How far the audio's best genre is above the best genre the tag names (0 where the tag
    names the audio's best genre); None where the file has no tag that maps."""
    if not sets:
        return None
    probs, parents = audio.probabilities, audio.parents
    tops = {g: p for g, p in probs.items() if g not in parents}
    if not tops or agrees(probs, sets, parents):
        return 0.0
    named = [p for g, p in probs.items() if support(g, sets, parents) > 0]
    return round(max(tops.values()) - max(named, default=0.0), 4)


def steps(
    audio: Analysis, fused: FusedTrack, chosen: FusionWeights | None, result: Analysis
) -> list[dict[str, Any]]:
    """For each of the final top genres: its probability from the audio alone, then with
    the file's tag, then the album, then the artist added, and the final one."""
    top = [g.name for g in result.genres[:STEP_GENRES]]
    rows = []
    for genre in top:
        p = audio.probabilities.get(genre, 0.0)
        row: dict[str, Any] = {"genre": genre, "audio": round(p, 4)}
        z = logit(p)
        if chosen is not None:
            found = terms(genre, fused.evidence, audio.parents)
            for kind, names in TERM_GROUPS.items():
                z += sum(chosen.w(n) * found[n] for n in names)
                row[kind] = round(sigmoid(z), 4)
        row["final"] = round(result.probabilities.get(genre, p), 4)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- what the services store


def verdict_fields(
    outcome: Outcome, review: str, spellings: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The Track fields of a fused verdict (not the timeline, duration or embedding, which
    only an analysis of the audio changes)."""
    fields = analysis_fields(outcome.analysis, spellings)
    fields.pop("embedding")
    if review == ReviewChoice.KEEP:
        fields["verdict"]["tag_values"] = []  # the owner keeps the file's own genres
    return {**fields, "genre_index": genre_index(outcome.analysis), **outcome.fields}


def arrival(track: Track, analysis: Analysis) -> tuple[Analysis, dict[str, Any]]:
    """A freshly analysed track fused with its file's tag, album and artist: the fused
    analysis, and the evidence fields to store with it."""
    audio = dataclasses.replace(analysis, probabilities=rounded(analysis.probabilities))
    evidence = file_evidence(track, analysis.evidence)
    target = Target(track.pk, audio, evidence, track.review_choice)
    outcome = fuse_targets(track.owner_id, [target])[track.pk]
    fields = {
        **outcome.fields,
        "audio_verdict": audio_verdict(audio),
        "album_artist": (evidence.album_artist or "")[:500],
    }
    return outcome.analysis, fields


def mates_to_refuse(track_id: int) -> list[int]:
    """The owner's other analysed tracks of the track's album or artist: the ones whose
    evidence its arrival changed."""
    return mates_of(Track.objects.filter(pk=track_id))


def mates_of(tracks: QuerySet[Track]) -> list[int]:
    """The owners' other analysed tracks sharing an album or an artist with `tracks`: the
    ones to fuse again once `tracks` changed (analysed again, or deleted)."""
    keys = list(tracks.values_list("owner_id", "album_key", "artist_key", "pk"))
    same = Q()
    for owner_id, album, artist, _ in keys:
        if album:
            same |= Q(owner_id=owner_id, album_key=album)
        if artist:
            same |= Q(owner_id=owner_id, artist_key=artist)
    if not same:
        return []
    mates = Track.objects.filter(same, status=Status.DONE).exclude(pk__in=[k[3] for k in keys])
    return list(mates.order_by("pk").values_list("pk", flat=True))


def stored_targets(tracks: Iterable[Track]) -> list[Target]:
    return [
        Target(
            t.pk,
            analysis_from_verdict(t.audio_verdict),
            evidence_from_json((t.fusion or {}).get("file")),
            t.review_choice,
        )
        for t in tracks
        if t.audio_verdict
    ]
