"""Fusion over a set of tracks analysed together (a folder on the command line, a user's
library in the web app): each track's evidence from its own tags, its album's and its
artist's other tracks, then the fused verdict beside the audio's.

Works from stored audio probabilities alone, so a library is fused again, when a track
arrives, without analysing anything again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from classifier.engine.analysis import Analysis, GenreScore
from classifier.engine.evidence import TrackEvidence
from classifier.engine.fusion import (
    AlbumFlag,
    AlbumPool,
    Evidence,
    FusionWeights,
    agrees,
    far_from_album,
    fuse,
    support,
    tag_reliability,
)
from classifier.engine.runner import NOVEL_WARNING


@dataclass
class LibraryTrack:
    audio: Mapping[str, float]  # the head's calibrated probabilities, every genre
    evidence: TrackEvidence
    folder: str | None = None  # where the file lies: tells apart same-named albums
    catalog: list[frozenset[str]] = field(default_factory=list)


@dataclass
class FusedTrack:
    probabilities: dict[str, float]
    evidence: Evidence
    flag: AlbumFlag | None  # None where the track is on no album with other tracks


def fuse_library(
    tracks: Sequence[LibraryTrack],
    weights: FusionWeights,
    parents: Mapping[str, str],
    reliability: float | None = None,
) -> list[FusedTrack]:
    """Every track's fused probabilities, in order (see fusion.py for the rule).

    `reliability`: r of the whole library where `tracks` are only part of it (the web app
    fuses an album and an artist at a time); by default r of `tracks` themselves."""
    if not tracks:
        return []
    genres = list(tracks[0].audio)
    sets = [t.evidence.sets_for(genres) for t in tracks]
    if reliability is None:
        reliability = tag_reliability(
            [agrees(t.audio, s, parents) for t, s in zip(tracks, sets, strict=True) if s]
        )
    albums = [t.evidence.album_key(t.folder) for t in tracks]
    pool = AlbumPool()
    for n, (track, album) in enumerate(zip(tracks, albums, strict=True)):
        if album is not None:
            pool.add(album, n, track.audio)
    artists = _artist_pools(tracks, albums)
    fused = []
    for n, track in enumerate(tracks):
        evidence = Evidence(file_tag=sets[n], catalog=track.catalog, tag_reliability=reliability)
        flag = None
        if albums[n] is not None:
            evidence.album, evidence.album_tracks = pool.others(albums[n], n)
            if evidence.album_tracks:
                flag = far_from_album(
                    track.audio, evidence.album, evidence.album_tracks, weights, parents
                )
        evidence.artist, evidence.artist_tracks = _artist_off_album(artists, track, albums[n], n)
        fused.append(FusedTrack(_fused(track.audio, evidence, weights, parents), evidence, flag))
    return fused


def _artist_pools(
    tracks: Sequence[LibraryTrack], albums: Sequence[Hashable | None]
) -> tuple[AlbumPool, AlbumPool]:
    """Sums per artist, and per artist and album: one pass, whatever the library's size."""
    by_artist, by_album = AlbumPool(), AlbumPool()
    for n, (track, album) in enumerate(zip(tracks, albums, strict=True)):
        artist = track.evidence.artist_key()
        if artist is not None:
            by_artist.add(artist, n, track.audio)
            if album is not None:
                by_album.add((artist, album), n, track.audio)
    return by_artist, by_album


def _artist_off_album(
    pools: tuple[AlbumPool, AlbumPool], track: LibraryTrack, album: Hashable | None, n: int
) -> tuple[dict[str, float] | None, int]:
    """The mean audio of the artist's tracks that are not on track n's album (nor track n)."""
    artist = track.evidence.artist_key()
    if artist is None:
        return None, 0
    by_artist, by_album = pools
    everyone, count = by_artist.others(artist, n)
    if album is not None:
        mates, on_album = by_album.others((artist, album), n)
        if count - on_album < 1:
            return None, 0
        sums = {g: everyone[g] * count - mates.get(g, 0.0) * on_album for g in everyone}
        count -= on_album
        everyone = {g: s / count for g, s in sums.items()}
    return (everyone, count) if count else (None, 0)


def _fused(
    audio: Mapping[str, float],
    evidence: Evidence,
    weights: FusionWeights,
    parents: Mapping[str, str],
) -> dict[str, float]:
    nothing = not (evidence.file_tag or evidence.catalog or evidence.album_tracks)
    if nothing and not evidence.artist_tracks:
        return dict(audio)  # no evidence: the audio's verdict exactly
    return fuse(audio, evidence, weights, parents)


# ---------------------------------------------------------------- the verdicts


def fused_analysis(analysis: Analysis, fused: FusedTrack, top_k: int) -> Analysis:
    """`analysis` with the fused verdict in place of the audio's (genres, probabilities,
    uncertain); a track that sounds unlike music stays uncertain whatever its tags say."""
    probs = fused.probabilities
    # Stable over the head's order, so a parent tied with its style still ranks first.
    ranked = [
        GenreScore(g, probs[g], analysis.parents.get(g))
        for g in sorted(probs, key=lambda g: -probs[g])[:top_k]
    ]
    novel = NOVEL_WARNING in analysis.warnings
    uncertain = not ranked or ranked[0].confidence < analysis.min_confidence or novel
    return dataclasses.replace(
        analysis, genres=ranked, probabilities=dict(probs), uncertain=uncertain
    )


def evidence_json(
    track: TrackEvidence, fused: FusedTrack, parents: Mapping[str, str], top: int = 3
) -> list[dict[str, Any]]:
    """The `evidence` list of a `classify --json` line: what each source said."""
    found: list[dict[str, Any]] = []
    tags = fused.evidence.file_tag
    if track.values:
        names = sorted({g for s in tags for g in s})
        found.append(
            {
                "source": "file_tag",
                "genres": [_score(g, support(g, tags, parents)) for g in names],
                "values": [v.raw for v in track.values],
                "unknown": track.unknown(),
            }
        )
    e = fused.evidence
    if e.album is not None and e.album_tracks:
        entry = {"source": "album", "genres": _best(e.album, top), "tracks": e.album_tracks}
        if fused.flag is not None:
            entry["far_from_album"] = fused.flag.far
            entry["distance"] = round(fused.flag.score, 4)
        found.append(entry)
    if e.artist is not None and e.artist_tracks:
        found.append(
            {"source": "artist", "genres": _best(e.artist, top), "tracks": e.artist_tracks}
        )
    if e.catalog:
        names = sorted({g for s in e.catalog for g in s})
        found.append(
            {
                "source": "catalog",
                "genres": [_score(g, support(g, e.catalog, parents)) for g in names],
            }
        )
    return found


def _score(name: str, confidence: float) -> dict[str, Any]:
    return {"name": name, "confidence": round(confidence, 4)}


def _best(probs: Mapping[str, float], top: int) -> list[dict[str, Any]]:
    ranked = sorted(probs.items(), key=lambda item: -item[1])[:top]
    return [_score(g, p) for g, p in ranked]
