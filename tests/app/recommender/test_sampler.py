"""recommender.sampler: real yt-dlp and ffmpeg, downloading from the local media stand-in."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from recommender import sampler
from recommender.sampler import Candidate, SampleError, SampleNetworkError
from tests.app.recommender.conftest import sectioned_song


def decode(path: Path) -> tuple[np.ndarray, int]:
    """Mono float samples of a file, decoded with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        chunks = [
            frame.to_ndarray().reshape(-1, frame.samples).mean(axis=0)
            for frame in container.decode(stream)
        ]
    return np.concatenate(chunks).astype(np.float32), rate


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


@pytest.fixture
def search_here(settings, media):
    settings.RECOMMENDER_SAMPLE_SEARCH = media.search_template
    settings.RECOMMENDER_SAMPLE_SECONDS = 30.0
    return media


def test_search_reads_titles_and_durations_flat(search_here, song_dir):
    song = sectioned_song(song_dir, "one", seconds=8)
    search_here.add_result("Nina Simone - Feeling Good", "Nina Simone - Feeling Good", song, 8)
    search_here.add_result("Nina Simone - Feeling Good", "Feeling Good (Live)", song, 300)
    found = sampler.search("Nina Simone", "Feeling Good")
    assert [(c.title, c.duration) for c in found] == [
        ("Nina Simone - Feeling Good", 8),
        ("Feeling Good (Live)", 300),
    ]
    assert all(c.url.startswith(search_here.url + "/audio/") for c in found)
    # Nothing was downloaded: only the feed was read.
    assert not search_here.requests("^/audio/")


def test_downloads_only_a_30_second_section_from_the_middle(search_here, song_dir, tmp_path):
    # Three minutes of AAC in MP4, as video sites serve audio: long enough, and indexed, so
    # that ffmpeg seeks to the section rather than reading its way in.
    song = sectioned_song(
        song_dir, "middle", seconds=180, middle_hz=1000, edge_hz=300, sample_rate=44_100, fmt="m4a"
    )
    search_here.add_result("Artist - Song", "Artist - Song (Official Audio)", song, 180)
    out = tmp_path / "out"
    out.mkdir()
    sample = sampler.fetch_sample("Artist", "Song", 181.0, out)

    assert sample.path.suffix == ".mp3" and sample.path.parent == out
    assert (sample.start, sample.seconds) == (75.0, 30.0)
    samples, rate = decode(sample.path)
    assert 29.0 <= len(samples) / rate <= 31.0
    # Every second of it is the middle's 1 kHz tone, none of the edges' 300 Hz.
    seconds = [samples[i * rate : (i + 1) * rate] for i in range(1, int(len(samples) / rate) - 1)]
    assert all(abs(dominant_hz(s, rate) - 1000) < 20 for s in seconds)
    # ffmpeg seeked into the file with a Range request rather than reading it from the start.
    ranges = [r.headers.get("Range", "") for r in search_here.requests("^/audio/")]
    assert any(r.startswith("bytes=") and r != "bytes=0-" for r in ranges), ranges


def test_picks_the_best_matching_candidate(search_here, song_dir, tmp_path):
    right = sectioned_song(song_dir, "right", seconds=40, middle_hz=700, edge_hz=700)
    live = sectioned_song(song_dir, "live", seconds=40, middle_hz=1500, edge_hz=1500)
    other = sectioned_song(song_dir, "other", seconds=40, middle_hz=2500, edge_hz=2500)
    query = "Portishead - Roads"
    search_here.add_result(query, "Portishead - Roads (Live at Roseland)", live, 40)
    search_here.add_result(query, "Portishead - Glory Box", other, 40)
    search_here.add_result(query, "Roads", right, 40)
    search_here.results[query.lower()][-1].title = "Portishead – Roads [HD]"
    sample = sampler.fetch_sample("Portishead", "Roads", 40.0, tmp_path)
    assert sample.candidate.title == "Portishead – Roads [HD]"
    samples, rate = decode(sample.path)
    assert abs(dominant_hz(samples[rate : 3 * rate], rate) - 700) < 20


def test_nothing_matching_is_a_sample_error(search_here, song_dir, tmp_path):
    other = sectioned_song(song_dir, "other", seconds=10)
    search_here.add_result("Björk - Jóga", "Ten hours of rain sounds", other, 36000)
    with pytest.raises(SampleError, match="well enough") as caught:
        sampler.fetch_sample("Björk", "Jóga", 305.0, tmp_path)
    assert not isinstance(caught.value, SampleNetworkError)
    with pytest.raises(SampleError, match="no search results"):
        sampler.fetch_sample("Nobody", "Nothing", 100.0, tmp_path)


def test_server_errors_are_network_errors(search_here, song_dir, tmp_path):
    song = sectioned_song(song_dir, "song", seconds=40)
    search_here.add_result("A - B", "A - B", song, 40)
    search_here.fail("^/audio/", *[(503, {})] * 10)
    with pytest.raises(SampleNetworkError):
        sampler.fetch_sample("A", "B", 40.0, tmp_path)


def test_a_missing_file_is_final(search_here, song_dir, tmp_path):
    song = sectioned_song(song_dir, "gone", seconds=40)
    search_here.add_result("A - B", "A - B", song, 40)
    song.unlink()
    with pytest.raises(SampleError) as caught:
        sampler.fetch_sample("A", "B", 40.0, tmp_path)
    assert not isinstance(caught.value, SampleNetworkError)


def test_unreachable_search_is_a_network_error(settings, tmp_path):
    settings.RECOMMENDER_SAMPLE_SEARCH = "http://127.0.0.1:9/search.rss?q={query}"
    with pytest.raises(SampleNetworkError):
        sampler.search("A", "B")


def test_ffmpeg_from_path_else_the_wheel(settings, monkeypatch, tmp_path):
    import imageio_ffmpeg

    settings.RECOMMENDER_FFMPEG = ""
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg anywhere on PATH
    sampler.ffmpeg_exe.cache_clear()
    assert sampler.ffmpeg_exe() == imageio_ffmpeg.get_ffmpeg_exe()
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    sampler.ffmpeg_exe.cache_clear()
    assert sampler.ffmpeg_exe() == str(fake)
    sampler.ffmpeg_exe.cache_clear()


def candidate(title: str, duration: float | None, uploader: str = "") -> Candidate:
    return Candidate(url="http://x", title=title, duration=duration, uploader=uploader)


def test_scores_prefer_the_title_and_the_length():
    exact = sampler.score(
        candidate("Radiohead - Karma Police", 264), "Radiohead", "Karma Police", 263.0
    )
    long_version = sampler.score(
        candidate("Radiohead - Karma Police", 400), "Radiohead", "Karma Police", 263.0
    )
    wrong_song = sampler.score(
        candidate("Radiohead - Creep", 263), "Radiohead", "Karma Police", 263.0
    )
    live = sampler.score(
        candidate("Radiohead - Karma Police (Live)", 263), "Radiohead", "Karma Police", 263.0
    )
    topic = sampler.score(
        candidate("Karma Police", 264, uploader="Radiohead - Topic"),
        "Radiohead",
        "Karma Police",
        263.0,
    )
    assert exact > 0.9 and topic > 0.9
    assert exact > long_version and exact > wrong_song and exact > live
    assert (
        sampler.score(
            candidate("Radiohead - Karma Police (Live)", 263),
            "Radiohead",
            "Karma Police - Live",
            263.0,
        )
        > live
    )


def test_middle_section_and_search_title():
    assert sampler.middle_section(200.0, 30.0) == (85.0, 115.0)
    assert sampler.middle_section(20.0, 30.0) == (0.0, 20.0)
    assert sampler.middle_section(None, 30.0) == (0.0, 30.0)
    assert sampler.search_title("Hey Jude - Remastered 2015") == "Hey Jude"
    assert sampler.search_title("Roads - Live at Roseland") == "Roads - Live at Roseland"
