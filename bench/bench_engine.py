"""Speed of the genre engine on this machine.

Builds 4-minute tracks from the GTZAN clips in ../shared (real music, FLAC), then times:
- `analyse()` with the default chunk budget and with `--full` (the model loaded once, warm);
- the original musicnn extractor's procedure: librosa.load at 16 kHz, librosa's mel spectrogram,
  patches stacked one by one and the CNN run one patch at a time (musicnn's BATCH_SIZE = 1),
  here with the torch port since TensorFlow is not part of the project;
- with --original-python, the original extractor itself (`musicnn.extractor.extractor`, on
  TensorFlow) on the same tracks, run by that interpreter in a separate environment where
  `musicnn` and TensorFlow are installed (never in the project's own).
The real-time factor is seconds of audio analysed per second of wall time.
Last line: rtf_default=<x> rtf_full=<x> seconds_per_4min_track=<x>
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import django
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genreweb.settings")
django.setup()

import librosa  # noqa: E402
import soundfile  # noqa: E402
import torch  # noqa: E402

from classifier.analysis import get_engine  # noqa: E402
from classifier.config import AUDIO  # noqa: E402

GTZAN = Path(os.environ.get("GENREWEB_SHARED_DIR", REPO.parent / "shared")) / "data/gtzan_mini"


def make_tracks(folder: Path, count: int) -> list[Path]:
    """`count` 4-minute FLAC tracks, each eight 30-second GTZAN clips end to end."""
    clips = sorted(GTZAN.glob("*/*.flac"))
    rng = np.random.default_rng(0)
    tracks = []
    for n in range(count):
        chosen = rng.choice(len(clips), size=8, replace=False)
        audio = np.concatenate([soundfile.read(clips[i], dtype="float32")[0] for i in chosen])
        path = folder / f"track{n}.flac"
        soundfile.write(path, audio, 22_050)
        tracks.append(path)
    return tracks


def original_procedure(engine, path: Path) -> int:
    """musicnn's extractor, step for step, with the torch port in place of TensorFlow."""
    audio, sr = librosa.load(path, sr=AUDIO.sample_rate)
    rep = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=AUDIO.hop_length,
                                         n_fft=AUDIO.n_fft, n_mels=AUDIO.n_mels).T
    # musicnn casts to float16 before the log; float16 arithmetic would overflow under numpy 2
    rep = np.log10(10000 * rep.astype(np.float16).astype(np.float32) + 1)
    batch = None
    for start in range(0, rep.shape[0] - AUDIO.patch_frames + 1, AUDIO.patch_frames):
        patch = rep[None, start:start + AUDIO.patch_frames]
        batch = patch if batch is None else np.concatenate((batch, patch), axis=0)
    with torch.inference_mode():
        for patch in batch:
            engine.cnn(torch.from_numpy(patch[None].astype(np.float32)))
    return len(batch)


ORIGINAL = """
import sys, time
from musicnn.extractor import extractor
run = lambda p: extractor(p, model="MSD_musicnn", input_length=3, input_overlap=False,
                          extract_features=True)
run(sys.argv[1])  # warm-up: TensorFlow's first graph build is not the steady state
start = time.perf_counter()
for path in sys.argv[1:]:
    run(path)
print(f"ORIGINAL_SECONDS={time.perf_counter() - start}")
"""


def original_extractor(python: str, tracks: list[Path]) -> float:
    """Seconds the original musicnn extractor (TensorFlow) takes for the tracks."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([python, "-c", ORIGINAL, *map(str, tracks)], env=env,
                            capture_output=True, text=True, check=True)
    line = [x for x in result.stdout.splitlines() if x.startswith("ORIGINAL_SECONDS=")][-1]
    return float(line.split("=")[1])


def timed(fn, tracks: list[Path]) -> float:
    start = time.perf_counter()
    for path in tracks:
        fn(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=5, help="4-minute tracks to analyse")
    parser.add_argument("--original-python", metavar="PYTHON",
                        help="an interpreter with musicnn==0.1.0 and TensorFlow installed")
    args = parser.parse_args()
    if not GTZAN.exists():
        sys.exit(f"{GTZAN} is absent: the benchmark needs the shared GTZAN clips")
    started = time.perf_counter()
    engine = get_engine()
    print(f"model load: {time.perf_counter() - started:.2f} s; torch threads: "
          f"{torch.get_num_threads()}; cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        tracks = make_tracks(Path(tmp), args.tracks)
        seconds = sum(soundfile.info(p).duration for p in tracks)
        engine.analyse(tracks[0])  # warm-up: first-call allocations are not the steady state
        default = timed(lambda p: engine.analyse(p), tracks)
        full = timed(lambda p: engine.analyse(p, full=True), tracks)
        original = timed(lambda p: original_procedure(engine, p), tracks)
        tensorflow = (original_extractor(args.original_python, tracks)
                      if args.original_python else None)
    per_track = default / len(tracks)
    print(f"{len(tracks)} tracks, {seconds:.0f} s of audio")
    print(f"default budget: {default:.2f} s wall, {seconds / default:.1f}x real time")
    print(f"--full:         {full:.2f} s wall, {seconds / full:.1f}x real time")
    print(f"original musicnn procedure (one patch at a time, full track): {original:.2f} s wall, "
          f"{seconds / original:.1f}x real time")
    print(f"speed-up over the original procedure: default {original / default:.1f}x, "
          f"full {original / full:.1f}x")
    if tensorflow is not None:
        print(f"original musicnn extractor (TensorFlow): {tensorflow:.2f} s wall, "
              f"{seconds / tensorflow:.1f}x real time; speed-up: default "
              f"{tensorflow / default:.1f}x, full {tensorflow / full:.1f}x")
    print(f"rtf_default={seconds / default:.1f} rtf_full={seconds / full:.1f} "
          f"seconds_per_4min_track={per_track:.3f}")


if __name__ == "__main__":
    main()
