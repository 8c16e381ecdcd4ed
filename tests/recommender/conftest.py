"""Fixtures of the recommender's tests: the HTTP stand-ins and settings pointing at them.

Run with the recommender's own database (see recommender/README.md, Tests):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/recommender .venv/bin/pytest tests/recommender
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from recommender import tasks
from tests.audiofiles import tone, write_audio
from tests.recommender.standins import MediaStandIn, SpotifyStandIn


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
    for task in (tasks.sample_catalog_track, tasks.analyse_catalog_track,
                 tasks.refetch_catalog_track):
        monkeypatch.setattr(task, "delay",
                            lambda track_id, name=task.name: messages.append((name, track_id)))
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


def sectioned_song(directory: Path, name: str, seconds: float = 60.0, middle_hz: float = 1000.0,
                   edge_hz: float = 300.0, fmt: str = "mp3", sample_rate: int = 22_050) -> Path:
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


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """A whole file as mono float32 in -1..1, decoded with PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        blocks = []
        for frame in container.decode(stream):
            data = frame.to_ndarray().astype(np.float32)
            if frame.format.name.startswith("s16"):
                data /= 32768.0
            channels = len(frame.layout.channels)
            blocks.append(data.mean(0) if frame.format.is_planar
                          else data.reshape(-1, channels).mean(1))
        return np.concatenate(blocks), stream.rate


def joined_clips(clips: list[Path], target: Path, fmt: str = "m4a") -> Path:
    """Real music as a video site would serve it: GTZAN clips one after another, re-encoded."""
    parts = [read_mono(clip) for clip in clips]
    rate = parts[0][1]
    return write_audio(target, np.concatenate([samples for samples, _ in parts]), rate, fmt)
