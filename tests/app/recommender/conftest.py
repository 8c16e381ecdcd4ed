"""Fixtures of the recommender's tests: the HTTP stand-ins and settings pointing at them.

The recommender's end-to-end test uses them too (tests/e2e/recommender/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from recommender import tasks
from tests.app.recommender.standins import MediaStandIn, SpotifyStandIn
from tests.audiofiles import tone, write_audio


@pytest.fixture
def spotify() -> Iterator[SpotifyStandIn]:
    server = SpotifyStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def media() -> Iterator[MediaStandIn]:
    server = MediaStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, int]]:
    """The (task name, track id) of each message the catalog's tasks send, in order.

    Nothing reaches a broker: `delay` of each task only records its message here.
    """
    messages: list[tuple[str, int]] = []
    for task in (
        tasks.sample_catalog_track,
        tasks.analyse_catalog_track,
        tasks.refetch_catalog_track,
    ):
        monkeypatch.setattr(
            task, "delay", lambda track_id, name=task.name: messages.append((name, track_id))
        )
    return messages


@pytest.fixture
def catalog_settings(settings, tmp_path: Path, spotify: SpotifyStandIn, media: MediaStandIn):
    """Spotify, yt-dlp's search, media and index all pointed at this test's stand-ins."""
    settings.SPOTIFY_CLIENT_ID = SpotifyStandIn.CLIENT_ID
    settings.SPOTIFY_CLIENT_SECRET = SpotifyStandIn.CLIENT_SECRET
    settings.SPOTIFY_API_URL = spotify.api_url
    settings.SPOTIFY_TOKEN_URL = spotify.token_url
    settings.SPOTIFY_MAX_RETRY_AFTER = 5.0
    settings.RECOMMENDER_SAMPLE_SEARCH = media.search_template
    settings.RECOMMENDER_INDEX_DIR = str(tmp_path / "index")
    settings.RECOMMENDER_RETRY_BACKOFF = 0.0
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings


def sectioned_song(
    directory: Path,
    name: str,
    seconds: float = 60.0,
    middle_hz: float = 1000.0,
    edge_hz: float = 300.0,
    fmt: str = "mp3",
    sample_rate: int = 22_050,
) -> Path:
    """A real audio file whose middle half is a `middle_hz` tone and whose edges are another.

    A 30-second cut from the middle of a 60-second file then holds only `middle_hz`, which
    tells a middle cut from any other.
    """
    quarter = seconds / 4
    edge = tone(quarter, sample_rate, freqs=(edge_hz,), seed=1)
    middle = tone(2 * quarter, sample_rate, freqs=(middle_hz,), seed=2)
    samples = np.concatenate([edge, middle, edge])
    return write_audio(directory / f"{name}.{fmt}", samples, sample_rate, fmt)


@pytest.fixture
def song_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "songs"
    folder.mkdir()
    return folder
