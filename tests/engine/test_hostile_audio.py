"""Files that broke the decoder: 7.1 audio (a segmentation fault), WAV headers FFmpeg has no
decoder for (a traceback), junk after the audio (refused as damaged).

What could crash runs in a child process: a regression fails its test, not the test run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier.engine import audio, cli, isolation
from classifier.engine.analysis import Analysis, GenreScore
from classifier.engine.audio import decode, iter_decode, probe
from classifier.engine.errors import AudioError, TruncatedAudioError, UnsupportedAudioError
from classifier.engine.features import extract_chunks
from classifier.engine.isolation import check_isolated
from tests.audiofiles import make_audio_file
from tests.conftest import MODEL_DIR
from tests.engine.hostile import (
    channel_signals,
    exiting_check,
    expected_mono,
    garbage,
    hanging_check,
    impossible_wavs,
    pyav_plane_bug,
    raw_wav,
    run_in_child,
    with_tail,
    write_multichannel,
)

REPO = Path(__file__).resolve().parents[2]
SR = 16_000
RATES = [16_000, 44_100, 48_000, 192_000]
# soxr streamed block by block and soxr in one call round a little differently.
TOLERANCE = 1e-5


DECODE_ALL = """
import sys, numpy as np
from classifier.engine.audio import decode
out = sys.argv[1]
for n, path in enumerate(sys.argv[2:]):
    np.save(f"{out}/{n}.npy", decode(path))
"""


def decode_in_child(tmp_path: Path, *paths: Path) -> list[np.ndarray]:
    out = tmp_path / "decoded"
    out.mkdir(exist_ok=True)
    result = run_in_child(DECODE_ALL, out, *paths)
    assert result.returncode == 0, result.stderr
    return [np.load(out / f"{n}.npy") for n in range(len(paths))]


# --- 7.1 and other channel counts ------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_7_1_decodes_to_the_mean_of_its_channels(tmp_path, suffix, rate):
    signals = channel_signals(8, rate, seconds=1.5)
    path = write_multichannel(tmp_path / f"surround{suffix}", signals, rate)
    assert probe(path).channels == 8  # probing reads no samples: safe in this process
    (decoded,) = decode_in_child(tmp_path, path)
    expected = expected_mono(signals, rate)
    assert decoded.dtype == np.float32 and decoded.shape == expected.shape
    np.testing.assert_allclose(decoded, expected, atol=TOLERANCE)


def test_every_channel_count_from_1_to_16(tmp_path):
    # WAVE_FORMAT_EXTENSIBLE (soundfile) and plain PCM headers (FFmpeg guesses the layout).
    rate = 22_050
    made = []
    for count in (1, 2, 3, 5, 6, 7, 8, 9, 12, 16):
        signals = channel_signals(count, rate, seconds=1.0)
        made += [
            (signals, write_multichannel(tmp_path / f"ch{count}.wav", signals, rate)),
            (signals, raw_wav(tmp_path / f"ch{count}_pcm.wav", signals, rate)),
        ]
    decoded = decode_in_child(tmp_path, *(path for _, path in made))
    for (signals, path), mono in zip(made, decoded, strict=True):
        np.testing.assert_allclose(
            mono, expected_mono(signals, rate), atol=TOLERANCE, err_msg=path.name
        )


CHANNEL_MEAN = """
import av, numpy as np
from classifier.engine import audio
from tests.engine.hostile import channel_signals
signals = channel_signals(8, 8000, seconds=0.1)
frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(signals.T).reshape(1, -1),
                                   format="s16", layout="7.1")
frame.sample_rate = 8000
(packed,) = audio.float_converter(frame).resample(frame)
assert packed.format.name == "flt" and not packed.format.is_planar
np.testing.assert_allclose(audio.channel_mean(packed), (signals / 32768).mean(axis=0),
                           atol=1e-7)
"""


def test_the_channel_mean_never_reads_planes_pyav_miscounts():
    # A 7.1 frame: PyAV 18.1 reports 9 planes once converted to planar float.
    result = run_in_child(CHANNEL_MEAN)
    assert result.returncode == 0, result.stderr


def test_the_upload_check_passes_a_7_1_file(tmp_path):
    path = write_multichannel(tmp_path / "surround.wav", channel_signals(8, 48_000), 48_000)
    check_isolated(path)  # returns: the file decodes


# --- the upload check in a child process --------------------------------------------------


def test_a_decoder_crash_is_a_typed_error_not_the_callers_end(tmp_path, monkeypatch, caplog):
    path = write_multichannel(tmp_path / "surround.wav", channel_signals(8, 48_000), 48_000)
    # The decoder as it was: the real PyAV crash, in the checking child.
    monkeypatch.setattr(isolation, "CHECK", pyav_plane_bug)
    with pytest.raises(AudioError) as refused:
        check_isolated(path)
    message = str(refused.value)
    assert "surround.wav" in message and "crashed" in message and "SIGSEGV" in message
    # The log keeps where it crashed: the child's Python stack, written as it died.
    assert "in pyav_plane_bug" in caplog.text and "Segmentation fault" in caplog.text


def test_a_hanging_check_is_stopped(tmp_path, monkeypatch):
    path = make_audio_file(tmp_path, "wav", seconds=1.0)
    monkeypatch.setattr(isolation, "CHECK", hanging_check)
    with pytest.raises(AudioError, match="longer than 1 s"):
        check_isolated(path, timeout=1)


def test_a_child_that_fails_unexpectedly_is_a_readable_error(tmp_path, monkeypatch):
    path = make_audio_file(tmp_path, "wav", seconds=1.0)
    monkeypatch.setattr(isolation, "CHECK", exiting_check)
    with pytest.raises(AudioError, match="internal error"):
        check_isolated(path)


def test_the_check_reports_the_typed_error_of_the_child(tmp_path):
    text = tmp_path / "notes.mp3"
    text.write_text("not audio at all " * 50)
    with pytest.raises(AudioError) as refused:
        check_isolated(text)
    assert type(refused.value).__name__ == "NotAudioError"
    assert "notes.mp3 is not an audio file" in str(refused.value)


# --- WAV headers FFmpeg has no decoder for -------------------------------------------------


def test_wav_headers_without_a_decoder_are_typed_errors(tmp_path):
    for path in impossible_wavs(tmp_path):
        for read in (probe, decode, extract_chunks, check_isolated):
            with pytest.raises(UnsupportedAudioError) as exc:
                read(path)
            assert path.name in str(exc.value) and "no decoder" in str(exc.value)


def test_text_ffmpeg_reads_in_a_header_need_not_be_utf8(tmp_path):
    # Found by bench/fuzz.py: an ID3 title FFmpeg passes on as invalid UTF-8 made av.open()
    # raise UnicodeDecodeError.
    path = make_audio_file(tmp_path, "mp3", seconds=1.0, sample_rate=8000)
    title = b"\x03" + b"caf\xc2A"  # encoding 3 (UTF-8), then a broken sequence
    frame = b"TIT2" + struct.pack(">I", len(title)) + b"\x00\x00" + title
    header = b"ID3\x04\x00\x00" + bytes([0, 0, (len(frame) >> 7) & 0x7F, len(frame) & 0x7F])
    body = path.read_bytes()
    tagged = tmp_path / "broken_title.mp3"
    tagged.write_bytes(header + frame + body[_id3_length(body) :])
    assert probe(tagged).codec == "mp3"
    assert decode(tagged).size > 0


def _id3_length(data: bytes) -> int:
    if data[:3] != b"ID3":
        return 0
    size = 0
    for byte in data[6:10]:
        size = (size << 7) | byte
    return 10 + size


# --- junk after the audio ----------------------------------------------------------------

TAILS = {
    "8 zero bytes": b"\0" * 8,
    "1 KB of zeros": b"\0" * 1024,
    "4 KB of garbage": garbage(4096),
    "64 KB of garbage": garbage(65_536, seed=1),
}


@pytest.mark.parametrize("fmt", ["mp3", "flac", "wav", "ogg", "opus", "m4a"])
def test_junk_after_the_audio_is_analysed_with_a_warning(tmp_path, fmt):
    clean = make_audio_file(tmp_path, fmt, seconds=4.0)
    reference = decode(clean)
    for n, (label, tail) in enumerate(TAILS.items()):
        path = with_tail(clean, tail, f"junk{n}")
        warnings: list[str] = []
        decoded = np.concatenate(list(iter_decode(path, warnings=warnings)))
        # What decoded is the whole track (garbage may add a few frames of noise, which the
        # resampler blends into the last milliseconds).
        assert reference.size <= decoded.size <= reference.size + SR // 2, label
        same = reference.size - SR // 50
        np.testing.assert_allclose(decoded[:same], reference[:same], atol=1e-6, err_msg=label)
        for warning in warnings:
            assert "could not be decoded as audio" in warning and "analysed" in warning
        if fmt == "mp3" and tail == b"\0" * 8:
            assert warnings and "8 bytes" in warnings[0]


def test_thirty_seconds_then_garbage(tmp_path):
    clean = make_audio_file(tmp_path, "mp3", seconds=30.0, sample_rate=16_000)
    path = with_tail(clean, garbage(100_000, seed=2), "thirty")
    chunks = extract_chunks(path, budget=None)
    assert chunks.duration == pytest.approx(30.0, abs=0.2)
    assert chunks.warnings and "could not be decoded as audio" in chunks.warnings[0]


def test_damage_part_way_is_still_refused(tmp_path):
    # Half an MP3 whose header declares all of it, then garbage: not junk after the audio.
    data = make_audio_file(tmp_path, "mp3", seconds=6.0).read_bytes()
    path = tmp_path / "half.mp3"
    path.write_bytes(data[: len(data) // 2] + garbage(4096))
    with pytest.raises(TruncatedAudioError, match="of the 6.0 s its header declares"):
        decode(path)


def test_too_little_audio_before_the_junk_is_refused(tmp_path, monkeypatch):
    # Where no reliable length is declared, less than MIN_JUDGED_SECONDS is not enough.
    monkeypatch.setattr(audio, "_guessed_from_bitrate", lambda *args: True)
    short = with_tail(make_audio_file(tmp_path, "mp3", seconds=0.5), b"\0" * 8, "short")
    with pytest.raises(TruncatedAudioError, match="decoding failed after 0.5 s"):
        decode(short)
    longer = with_tail(make_audio_file(tmp_path, "mp3", seconds=2.0), b"\0" * 8, "longer")
    assert decode(longer).size == pytest.approx(2 * SR, abs=SR // 10)


def test_an_analysis_carries_the_warnings(engine_config, tmp_path):
    from classifier.engine.runner import analyse

    path = with_tail(make_audio_file(tmp_path, "mp3", seconds=4.0), b"\0" * 1024, "junk")
    analysis = analyse(path, engine_config)
    assert analysis.genres and len(analysis.warnings) == 1
    assert analysis.to_json()["warnings"] == analysis.warnings
    clean = analyse(make_audio_file(tmp_path, "flac", seconds=4.0), engine_config)
    assert clean.warnings == [] and clean.to_json()["warnings"] == []


# --- the command line: one file's failure never ends the run ------------------------------


def classify(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENREWEB_MODEL_DIR": str(MODEL_DIR), "GENREWEB_TORCH_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "classifier.engine", "classify", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def json_lines(result: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    if result.returncode < 0:
        pytest.fail(
            f"classify died of {signal.Signals(-result.returncode).name}:\n{result.stderr[-3000:]}"
        )
    return {Path(line["path"]).name: line for line in map(json.loads, result.stdout.splitlines())}


def test_classify_a_folder_with_surround_and_junk_among_good_files(tmp_path):
    folder = tmp_path / "library"
    folder.mkdir()
    make_audio_file(folder, "wav", seconds=4.0, name="a_good")
    write_multichannel(folder / "b_surround.wav", channel_signals(8, 48_000, 4.0), 48_000)
    write_multichannel(folder / "c_surround.flac", channel_signals(8, 44_100, 4.0), 44_100)
    with_tail(make_audio_file(tmp_path, "mp3", seconds=4.0, name="d"), b"\0" * 8, "d_junk")
    (tmp_path / "d_junk.mp3").rename(folder / "d_junk.mp3")
    make_audio_file(folder, "flac", seconds=4.0, name="e_good")

    result = classify(folder, "--json")

    lines = json_lines(result)
    assert sorted(lines) == [
        "a_good.wav",
        "b_surround.wav",
        "c_surround.flac",
        "d_junk.mp3",
        "e_good.flac",
    ]
    assert all(line["error"] is None and line["genres"] for line in lines.values()), lines
    assert result.returncode == 0, result.stderr
    assert lines["d_junk.mp3"]["warnings"] and lines["a_good.wav"]["warnings"] == []


def test_classify_reports_a_bad_header_and_goes_on(tmp_path):
    folder = tmp_path / "library"
    folder.mkdir()
    make_audio_file(folder, "wav", seconds=4.0, name="good")
    zero_bits, _ = impossible_wavs(tmp_path)
    zero_bits.rename(folder / "bad.wav")
    make_audio_file(folder, "wav", seconds=4.0, name="good2", seed=1)

    result = classify(folder, "--json")

    lines = json_lines(result)
    assert [name for name, line in lines.items() if line["error"] is None] == [
        "good.wav",
        "good2.wav",
    ]
    assert "bad.wav cannot be decoded" in lines["bad.wav"]["error"]
    assert result.returncode == 1
    assert "1 of 3 files failed" in result.stderr and "Traceback" not in result.stderr


class _Engine:
    """A stand-in engine: fails unexpectedly on one file, answers for the others."""

    model = "stub-model"

    def analyse(self, path: Path, **options: object) -> Analysis:
        if path.name == "b.wav":
            raise RuntimeError("something nobody foresaw")
        return Analysis(
            path=str(path),
            genres=[GenreScore("rock", 0.9)],
            probabilities={"rock": 0.9},
            styles=[],
            chunks=1,
            duration=3.0,
            model=self.model,
            uncertain=False,
        )


def test_an_unexpected_exception_is_that_files_error(tmp_path, monkeypatch, caplog):
    for name in ("a.wav", "b.wav", "c.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
    monkeypatch.setattr(cli, "get_engine", lambda config: _Engine())
    parser = argparse.ArgumentParser()
    cli.add_classify_arguments(parser)
    options = vars(parser.parse_args([str(tmp_path), "--json"]))
    out, err = io.StringIO(), io.StringIO()

    status = cli.classify(options, cli.config_from_environment(), out, err)

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [Path(line["path"]).name for line in lines] == ["a.wav", "b.wav", "c.wav"]
    assert lines[0]["error"] is None and lines[2]["error"] is None
    assert lines[1]["error"] == (
        "b.wav could not be analysed: an internal error occurred "
        "(RuntimeError: something nobody foresaw)"
    )
    assert status == 1 and "1 of 3 files failed" in err.getvalue()
    assert "something nobody foresaw" in caplog.text and "Traceback" in caplog.text


def test_training_features_skip_a_file_that_fails_unexpectedly(tmp_path):
    from classifier.engine.headcard import embed_all
    from classifier.engine.training import LabelledFile

    class Embedder:
        def embed(self, path: Path, **options: object) -> object:
            if path.name == "b.wav":
                raise ValueError("odd")
            return type("Outputs", (), {"features": np.zeros((1, 4))})()

    items = [LabelledFile(tmp_path / n, "rock", "rock/x") for n in ("a.wav", "b.wav")]
    err = io.StringIO()
    features, kept = embed_all(Embedder(), items, "penultimate", err)  # type: ignore[arg-type]
    assert [item.path.name for item in kept] == ["a.wav"] and len(features) == 1
    assert "b.wav: skipped: b.wav could not be analysed" in err.getvalue()


def test_raw_wav_helper_writes_what_ffmpeg_reads(tmp_path):
    # The crafted-header writer itself: with sane fields FFmpeg reads the samples back.
    signals = channel_signals(2, 16_000, 0.5)
    decoded = decode(raw_wav(tmp_path / "plain.wav", signals, 16_000))
    np.testing.assert_allclose(decoded, expected_mono(signals, 16_000), atol=TOLERANCE)
