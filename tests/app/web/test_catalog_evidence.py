"""The catalog as evidence: a catalog artist of the same name brings Spotify's genres."""

from __future__ import annotations

import pytest

from recommender.models import CatalogArtist
from tests.app.web.evidence_helpers import arrive, audio_analysis, tagged_file

pytestmark = pytest.mark.django_db


def test_a_matching_catalog_artist_s_genres_are_evidence(user, tmp_path):
    CatalogArtist.objects.create(spotify_id="a1", name="Iron Testers", genres=["metal", "zydeco x"])
    path = tagged_file(tmp_path, "flac", "anvil", artist=["iron  testers"])
    track = arrive(user, path, audio_analysis({"Metal": 0.45, "Rock": 0.4}))
    catalog = track.evidence_of("catalog")
    assert catalog is not None and [g["name"] for g in catalog["genres"]] == ["Metal"]
    assert track.verdict["probabilities"]["Metal"] > track.audio_verdict["probabilities"]["Metal"]


def test_no_catalog_artist_no_catalog_evidence(user, tmp_path):
    CatalogArtist.objects.create(spotify_id="a2", name="Someone Else", genres=["jazz"])
    path = tagged_file(tmp_path, "flac", "tune", artist=["Iron Testers"])
    track = arrive(user, path, audio_analysis({"Metal": 0.45, "Rock": 0.4}))
    assert track.evidence_of("catalog") is None
    assert track.verdict["probabilities"]["Metal"] == track.audio_verdict["probabilities"]["Metal"]
