"""What a track's file says is stored at analysis time, beside the audio's own verdict: the
genres of its tag (mapped, and unknown spellings as written), its album, album artist and
artist, read from real tagged files of each format; and the fused verdict is what the tag
policies write."""

from __future__ import annotations

import pytest

from classifier.engine.filetags import read_tags
from classifier.models import Track
from classifier.services import actions
from tests.app.web.evidence_helpers import arrive, audio_analysis, store, tagged_file

pytestmark = pytest.mark.django_db

ROCKISH = {"Rock": 0.40, "Jazz": 0.30}


@pytest.mark.parametrize("fmt", ["mp3", "flac", "ogg", "m4a", "wav"])
def test_the_file_s_evidence_is_stored_from_each_format(user, tmp_path, fmt):
    path = tagged_file(
        tmp_path,
        fmt,
        "song",
        genre=["Jazz; Dungeon Synth"],
        album=["Night Tones"],
        artist=["Sine feat. Cosine"],
        album_artist=["Sine"],
    )
    track = arrive(user, path, audio_analysis(ROCKISH))
    stored = track.fusion["file"]
    assert stored["album"] == "Night Tones" and stored["album_artist"] == "Sine"
    assert stored["artist"] == "Sine feat. Cosine"
    assert {"raw": "Jazz", "genres": ["Jazz"]} in stored["values"]
    assert {"raw": "Dungeon Synth", "genres": []} in stored["values"]  # kept as written
    assert track.album_artist == "Sine" and track.album_key == "sine\x1fnight tones"
    tag = track.evidence_of("file_tag")
    assert tag["genres"] == [{"name": "Jazz", "confidence": 1.0}]
    assert tag["unknown"] == ["Dungeon Synth"]
    # The audio's verdict is kept as it was; the final one follows the tag.
    assert track.audio_genres[0]["name"] == "Rock"
    assert track.primary_genre == "Jazz"
    assert track.verdict["probabilities"]["Jazz"] > track.audio_verdict["probabilities"]["Jazz"]


def test_an_untagged_file_keeps_the_audio_s_verdict(user, tmp_path):
    track = arrive(user, tagged_file(tmp_path, "flac", "bare"), audio_analysis(ROCKISH))
    assert track.evidence == [] and track.album_key == "" and track.artist_key == ""
    assert track.verdict["probabilities"] == track.audio_verdict["probabilities"]
    assert track.tag_agrees is None and track.disagreement is None


def test_genreweb_s_own_tags_do_not_replace_what_the_user_wrote(user, tmp_path):
    """After Genreweb replaced the file's genres, a new analysis still weighs the genres the
    user wrote (and the unknown spelling), not Genreweb's own."""
    path = tagged_file(tmp_path, "mp3", "mine", genre=["Jazz", "Chamber Pop Noir"])
    track = arrive(user, path, audio_analysis({"Rock": 0.9}), policy="replace")
    assert read_tags(track.file.path).genres != ["Jazz", "Chamber Pop Noir"]  # replaced
    assert actions.reanalyse(Track.objects.filter(pk=track.pk)) == [track.pk]
    track = store(track, audio_analysis({"Rock": 0.9}))
    assert track.evidence_of("file_tag")["unknown"] == ["Chamber Pop Noir"]
    assert track.evidence_of("file_tag")["genres"] == [{"name": "Jazz", "confidence": 1.0}]


@pytest.mark.parametrize("policy", ["replace", "merge"])
def test_the_tag_policies_write_the_fused_verdict(user, tmp_path, policy):
    path = tagged_file(tmp_path, "flac", "p", genre=["Jazz"])
    track = arrive(user, path, audio_analysis(ROCKISH), policy=policy)
    assert track.tag_values[0] == "Jazz"  # the audio alone said Rock
    assert "Jazz" in read_tags(track.file.path).genres
    result = actions.retag(Track.objects.filter(pk=track.pk), "replace")
    assert result.errors == []
    assert read_tags(track.file.path).genres == track.tag_values
