"""Helpers of the evidence tests: real audio files tagged with mutagen, audio verdicts made
to measure, and tracks stored as a worker stores them (without running the engine, whose
verdict on a test tone says little), their album and artist fused again as the task does."""

from __future__ import annotations

from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TALB, TCON, TPE1, TPE2, Encoding
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from classifier.engine.analysis import Analysis, GenreScore
from classifier.models import Track
from classifier.services import evidence, intake, processing, taxonomy
from tests.audiofiles import make_audio_file

MODEL = "musicnn-msd+test-head"
_ID3 = {"genre": TCON, "album": TALB, "artist": TPE1, "album_artist": TPE2}
_VORBIS = {"genre": "GENRE", "album": "ALBUM", "artist": "ARTIST", "album_artist": "ALBUMARTIST"}
_MP4 = {"genre": "\xa9gen", "album": "\xa9alb", "artist": "\xa9ART", "album_artist": "aART"}


def tagged_file(folder: Path, fmt: str, name: str, seed: int = 0, **tags: list[str]) -> Path:
    """A real audio file of `fmt` (2 s) with `tags` (genre, album, artist, album_artist)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = make_audio_file(folder, fmt, seconds=2.0, name=name, seed=seed)
    if not tags:
        return path
    if fmt == "mp3":
        id3 = ID3()
        for key, values in tags.items():
            id3.add(_ID3[key](encoding=Encoding.UTF8, text=values))
        id3.save(path)
    elif fmt == "wav":
        wave = WAVE(path)
        wave.add_tags()
        for key, values in tags.items():
            wave.tags.add(_ID3[key](encoding=Encoding.UTF8, text=values))
        wave.save()
    elif fmt == "m4a":
        mp4 = MP4(path)
        for key, values in tags.items():
            mp4[_MP4[key]] = values
        mp4.save()
    else:
        vorbis = {"flac": FLAC, "ogg": OggVorbis, "opus": OggOpus}[fmt](path)
        for key, values in tags.items():
            vorbis[_VORBIS[key]] = values
        vorbis.save()
    return path


def audio_analysis(
    probabilities: dict[str, float], rest: float = 0.02, model: str = MODEL
) -> Analysis:
    """An audio verdict over the active head's genres: `probabilities`, `rest` elsewhere."""
    names = taxonomy.current()
    probs = {g: probabilities.get(g, rest) for g in names.genres}
    parents = {s: p for s, p in names.parents.items() if s in probs and p in probs}
    ranked = sorted(probs, key=lambda g: -probs[g])[:3]
    genres = [GenreScore(g, probs[g], parents.get(g)) for g in ranked]
    return Analysis(
        path="",
        genres=genres,
        probabilities=probs,
        styles=[],
        chunks=1,
        duration=2.0,
        model=model,
        uncertain=genres[0].confidence < 0.35,
        parents=parents,
    )


def upload(owner, path: Path, policy: str = "fill") -> Track:
    """The file uploaded by `owner` (pending; nothing queued)."""
    return intake.accept_upload(
        owner, SimpleUploadedFile(path.name, path.read_bytes()), policy
    ).track


def store(track: Track, analysis: Analysis) -> Track:
    """What the worker does with the track: claim it, store the fused verdict and write the
    tags; then what the analysis task queues: its album's and artist's tracks fused again."""
    token = processing.claim_track(track.pk)
    assert token is not None
    assert processing.store_analysis(Track.objects.get(pk=track.pk), token, analysis)
    processing.refuse_tracks(evidence.mates_to_refuse(track.pk))
    track.refresh_from_db()
    return track


def arrive(owner, path: Path, analysis: Analysis, policy: str = "fill") -> Track:
    return store(upload(owner, path, policy), analysis)
