"""Long tracks are sought to their chunks in every format, and opened once.

Seeking is held to the streamed pass (features.streamed_chunks, or features.SEEKING off):
the same chunks, and on real music the same verdict. A file that cannot be sought falls back
to the streamed pass and says so in the log; the hardening of the streamed pass (cut short,
junk after the audio) holds for a sought file too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from classifier.engine import features, runner
from classifier.engine.audio import check, open_audio
from classifier.engine.config import AUDIO
from classifier.engine.errors import TruncatedAudioError
from classifier.engine.evidence import read_evidence
from classifier.engine.filetags import write_genres
from classifier.engine.isolation import check_and_read
from classifier.engine.runner import EngineConfig
from classifier.engine.tagbounds import MAX_ENTRIES
from tests.audiofiles import FORMATS, read_mono, tone, write_audio
from tests.conftest import MODEL_DIR
from tests.engine.bombs import flac_with_comments, many_frames_tag, mp3_with_tag
from tests.engine.hostile import garbage, rate_change_mp3

SR = 22_050
ALL_FORMATS = ["flac", "wav", "aiff", "opus", "mp3", "m4a", "ogg"]
LOSSY = ["mp3", "m4a", "ogg", "opus"]
# Bounds of the task: a sought track's genre probabilities within this of the streamed ones.
PROBABILITY_TOLERANCE = 0.02
FELL_BACK = "cannot be sought"


def long_tone(folder: Path, fmt: str, seconds: float = 100.0) -> Path:
    return write_audio(folder / f"long{FORMATS[fmt][0]}", tone(seconds, SR, seed=3), SR, fmt)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_long_tracks_seek_to_their_chunks_in_every_format(tmp_path, fmt, caplog):
    """Budgeted chunks of a long track, decoded by seeking, are the streamed pass's chunks."""
    path = long_tone(tmp_path, fmt)
    streamed = features.streamed_chunks(path)
    with open_audio(path) as audio:
        sparse = features.sparse_chunks(audio, 16)
        assert sparse is not None, audio.seek_problem
    assert len(sparse.patches) == 16
    by_start = {round(s, 3): p for s, p in zip(streamed.starts, streamed.patches, strict=True)}
    for start, patch in zip(sparse.starts, sparse.patches, strict=True):
        # Equal but for float16 rounding of the mel power where the resampler's last bit
        # differs (a log-mel step of ~4e-4). MP3, AAC, Vorbis and Opus land on the sample
        # too: their timestamps count from the streamed decode's first frame.
        np.testing.assert_allclose(patch, by_start[round(start, 3)], atol=1e-3)
    assert sparse.starts[0] == 0.0 and sparse.starts[-1] > 90
    with caplog.at_level(logging.INFO, logger="classifier.engine.features"):
        np.testing.assert_array_equal(features.extract_chunks(path).patches, sparse.patches)
    assert FELL_BACK not in caplog.text


@pytest.fixture(scope="module")
def music(gtzan_dir) -> np.ndarray:
    """Two minutes of real music (four GTZAN clips of other genres) at 22,050 Hz."""
    names = ["blues/blues.00000", "classical/classical.00001", "metal/metal.00002", "pop/pop.00003"]
    return np.concatenate([read_mono(gtzan_dir / f"{name}.flac")[0] for name in names])


@pytest.fixture(scope="module")
def engine(engine_config):
    from classifier.engine.runner import Engine

    return Engine(engine_config)


@pytest.mark.parametrize("fmt", LOSSY)
def test_seeking_gives_the_streamed_verdict_on_music(
    tmp_path, fmt, music, engine, monkeypatch, caplog
):
    # AAC's noise substitution draws its noise from a generator that a seek does not
    # restore: noisy bands differ (up to ~1 in the log-mel), the verdict does not.
    path = write_audio(tmp_path / f"music{FORMATS[fmt][0]}", music, SR, fmt)
    with caplog.at_level(logging.INFO, logger="classifier.engine.features"):
        sought = engine.analyse(path)
    assert FELL_BACK not in caplog.text
    monkeypatch.setattr(features, "SEEKING", False)
    streamed = engine.analyse(path)
    assert sought.genres[0].name == streamed.genres[0].name
    for genre, probability in streamed.probabilities.items():
        assert sought.probabilities[genre] == pytest.approx(probability, abs=PROBABILITY_TOLERANCE)
    np.testing.assert_allclose(
        [c.start for c in sought.timeline], [c.start for c in streamed.timeline]
    )


def test_junk_after_the_audio_falls_back_and_says_so(tmp_path, caplog):
    path = long_tone(tmp_path, "mp3")
    junk = path.with_name("junk.mp3")
    junk.write_bytes(path.read_bytes() + garbage(4096))
    with caplog.at_level(logging.INFO, logger="classifier.engine.features"):
        chunks = features.extract_chunks(junk)
    record = next(r for r in caplog.records if FELL_BACK in r.getMessage())
    assert record.levelno == logging.WARNING
    assert "junk.mp3" in record.getMessage() and "its end does not decode" in record.getMessage()
    assert len(chunks.patches) == 16  # the streamed pass analysed it...
    assert any("could not be decoded as audio" in w for w in chunks.warnings)  # ...and said so


def test_a_rate_change_within_the_stream_falls_back_and_says_so(tmp_path, caplog):
    # Joined MP3s: 40 s at 22,050 Hz, then 60 s at 44,100 Hz; a chunk straddles the join.
    path = rate_change_mp3(tmp_path, (40.0, 60.0), (SR, 44_100))
    with open_audio(path) as audio:
        assert audio.section(38.5, 3.0) is None
        assert audio.seek_problem == "its sample rate or channels change within the stream"
    with caplog.at_level(logging.INFO, logger="classifier.engine.features"):
        chunks = features.extract_chunks(path)
    assert "rate_change.mp3 cannot be sought: its sample rate" in caplog.text
    assert len(chunks.patches) == 13  # the streamed pass analysed the first part's 40 s


def test_a_sought_track_cut_short_is_still_refused(tmp_path, caplog):
    # The header (Xing) declares 100 s; the last 5 s are missing.
    path = long_tone(tmp_path, "mp3")
    data = path.read_bytes()
    cut = path.with_name("cut.mp3")
    cut.write_bytes(data[: int(len(data) * 0.95)])
    with (
        caplog.at_level(logging.INFO, logger="classifier.engine.features"),
        pytest.raises(TruncatedAudioError, match="cut.mp3 is cut short"),
    ):
        features.extract_chunks(cut)
    assert "cut.mp3 cannot be sought" in caplog.text


@pytest.mark.parametrize("fmt", ["mp3", "flac"])
def test_a_long_track_with_hidden_tags_is_sought_through_the_masked_view(tmp_path, fmt, caplog):
    # Tags past the bounds are hidden from FFmpeg by a view of the file (a start past an
    # MP3's ID3 tag, bytes patched over FLAC's comments): seeking reads through it too.
    clean = long_tone(tmp_path, fmt)
    bomb = tmp_path / f"bomb.{fmt}"
    if fmt == "mp3":
        mp3_with_tag(clean, many_frames_tag(MAX_ENTRIES + 1), bomb)
    else:
        flac_with_comments(clean, MAX_ENTRIES + 1, bomb)
    with caplog.at_level(logging.INFO, logger="classifier.engine.features"):
        chunks = features.extract_chunks(bomb)
    assert FELL_BACK not in caplog.text
    assert any("were not read" in w for w in chunks.warnings)
    np.testing.assert_allclose(chunks.patches, features.extract_chunks(clean).patches, atol=1e-3)


# ---------------------------------------------------------------- one open per file

_opened: list[str] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], str):
        _opened.append(args[0])


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one records only when asked


@pytest.fixture
def opens(monkeypatch) -> Iterator[tuple[list[str], list[object]]]:
    """(files Python opened, what av.open was asked to open), recorded during the test."""
    global _opened
    containers: list[object] = []
    real_open = av.open

    def counting_open(source: object, *args: object, **kwargs: object) -> object:
        containers.append(source)
        return real_open(source, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    _opened = []
    try:
        yield _opened, containers
    finally:
        _opened = None


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_a_long_track_is_opened_once(tmp_path, fmt, opens):
    path = long_tone(tmp_path, fmt)
    python_opens, containers = opens
    python_opens.clear()  # making the file opened it
    containers.clear()
    chunks = features.extract_chunks(path)
    assert len(chunks.patches) == 16
    assert [p for p in python_opens if Path(p) == path] == [str(path)]
    assert len(containers) == 1  # FFmpeg read the one handle, for the tags check too


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_an_analysis_reads_audio_and_tags_in_one_open(tmp_path, fmt, opens):
    path = long_tone(tmp_path, fmt)
    write_genres(path, ["Hip Hop"], policy="replace")  # a spelling the taxonomy maps
    python_opens, containers = opens
    python_opens.clear()  # making and tagging the file opened it
    containers.clear()
    config = EngineConfig(model_dir=MODEL_DIR, novelty_path=None)
    analysis = runner.Engine(config).analyse(path)
    assert [p for p in python_opens if Path(p) == path] == [str(path)]
    assert len(containers) == 1
    assert analysis.evidence is not None
    assert [set(s) for s in analysis.evidence.genre_sets()] == [{"Hip-Hop"}]
    assert analysis.evidence.genre_sets() == read_evidence(path).genre_sets()


def test_an_upload_check_opens_the_file_once(tmp_path, opens):
    path = long_tone(tmp_path, "m4a", seconds=5.0)
    python_opens, containers = opens
    python_opens.clear()  # making the file opened it
    containers.clear()
    assert check(path).codec == "aac"
    assert [p for p in python_opens if Path(p) == path] == [str(path)]
    assert len(containers) == 1


def test_the_upload_check_reads_the_tags_in_its_one_open(tmp_path, opens):
    path = long_tone(tmp_path, "m4a", seconds=5.0)
    write_genres(path, ["Jazz"], policy="replace")
    python_opens, containers = opens
    python_opens.clear()
    containers.clear()
    checked = check_and_read(str(path))  # what the child of check_isolated runs
    assert checked.info.codec == "aac" and checked.tags is not None
    assert checked.tags.genres == ["Jazz"]
    assert [p for p in python_opens if Path(p) == path] == [str(path)]
    assert len(containers) == 1


def test_chunk_starts_are_the_planned_ones(tmp_path):
    path = long_tone(tmp_path, "ogg")
    chunks = features.extract_chunks(path)
    assert chunks.total == (1 + 100 * AUDIO.sample_rate // AUDIO.hop_length) // AUDIO.patch_frames
    expected = np.array(features.spread(chunks.total, 16)) * AUDIO.patch_seconds
    np.testing.assert_allclose(chunks.starts, expected)
