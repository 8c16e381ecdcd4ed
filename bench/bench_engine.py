"""Speed of the genre engine on this machine.

Builds 4-minute tracks from the GTZAN clips in ../shared (real music; bench/tracks.py), then times:
- `analyse()` with the default chunk budget and with `--full` (the model loaded once, warm),
  and the default without the novelty check (its cost), on FLAC;
- the default budget on each of --formats (FLAC, MP3 at 192 kbps, M4A), with the budgeted
  chunks reached by seeking (the engine's way) and with the whole track streamed
  (features.SEEKING off: how MP3 and M4A were analysed before they were sought);
- the original musicnn extractor's procedure: librosa.load at 16 kHz, librosa's mel spectrogram,
  patches stacked one by one and the CNN run one patch at a time (musicnn's BATCH_SIZE = 1),
  here with the engine's numpy port since TensorFlow is not part of the project;
- with --original-python, the original extractor itself (`musicnn.extractor.extractor`, on
  TensorFlow) on the same tracks, run by that interpreter in a separate environment where
  `musicnn` and TensorFlow are installed (never in the project's own).
The real-time factor is seconds of audio analysed per second of wall time. Each measurement is
repeated over --rounds rounds, interleaved (ours, then the original's, then ours again...), and the
best round of each is reported: on a shared machine the least disturbed round is the truest
figure, and interleaving gives both sides the same odds of a quiet spell.
Last lines: one per format, `<format>: streamed <s> s (<x>x), sought <s> s (<x>x) per 4-minute
track`, then rtf_default=<x> rtf_full=<x> seconds_per_4min_track=<x> (FLAC, default budget).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import django
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genreweb.settings")
django.setup()

import librosa  # noqa: E402
import soundfile  # noqa: E402

from bench.tracks import FORMATS, GTZAN, make_tracks  # noqa: E402
from classifier.engine import features  # noqa: E402
from classifier.engine.config import AUDIO  # noqa: E402
from classifier.engine.runner import Engine, EngineConfig, get_engine  # noqa: E402


def original_procedure(engine, path: Path) -> int:
    """musicnn's extractor, step for step, with the numpy port in place of TensorFlow."""
    audio, sr = librosa.load(path, sr=AUDIO.sample_rate)
    rep = librosa.feature.melspectrogram(
        y=audio, sr=sr, hop_length=AUDIO.hop_length, n_fft=AUDIO.n_fft, n_mels=AUDIO.n_mels
    ).T
    # musicnn casts to float16 before the log; float16 arithmetic would overflow under numpy 2
    rep = np.log10(10000 * rep.astype(np.float16).astype(np.float32) + 1)
    batch = None
    for start in range(0, rep.shape[0] - AUDIO.patch_frames + 1, AUDIO.patch_frames):
        patch = rep[None, start : start + AUDIO.patch_frames]
        batch = patch if batch is None else np.concatenate((batch, patch), axis=0)
    for patch in batch:
        engine.cnn(patch[None].astype(np.float32))
    return len(batch)


# Reads "go" on stdin before each round and answers the round's seconds, so that rounds of
# the original interleave with ours while TensorFlow stays loaded and warm.
ORIGINAL = """
import sys, time
from musicnn.extractor import extractor
run = lambda p: extractor(p, model="MSD_musicnn", input_length=3, input_overlap=False,
                          extract_features=True)
run(sys.argv[1])  # warm-up: TensorFlow's first graph build is not the steady state
print("READY", flush=True)
for _ in sys.stdin:
    start = time.perf_counter()
    for path in sys.argv[1:]:
        run(path)
    print(f"ORIGINAL_SECONDS={time.perf_counter() - start}", flush=True)
"""


class OriginalExtractor:
    """The original musicnn extractor (TensorFlow) in its own interpreter, timed a round at a
    time on the same tracks."""

    def __init__(self, python: str, tracks: list[Path]) -> None:
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        # TensorFlow's chatter, shown if it fails; closed by close()
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [python, "-c", ORIGINAL, *map(str, tracks)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self._expect("READY")

    def _expect(self, prefix: str) -> str:
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line.strip()
        code = self.process.wait()
        self.log.seek(0)
        raise RuntimeError(
            f"the original extractor stopped (exit {code}):\n{self.log.read()[-2000:]}"
        )

    def round(self) -> float:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return float(self._expect("ORIGINAL_SECONDS=").split("=")[1])

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()
        self.log.close()


def best_rounds(measures: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """The least seconds of each measure over `rounds` interleaved rounds."""
    seconds: dict[str, list[float]] = {name: [] for name in measures}
    for n in range(rounds):
        for name, measure in measures.items():
            seconds[name].append(measure())
        print(
            f"round {n + 1}: "
            + ", ".join(f"{name} {values[-1]:.2f} s" for name, values in seconds.items()),
            flush=True,
        )
    return {name: min(values) for name, values in seconds.items()}


def streamed(engine: Engine, path: Path) -> None:
    """The default analysis with the whole track streamed, as if it could not be sought."""
    features.SEEKING = False
    try:
        engine.analyse(path)
    finally:
        features.SEEKING = True


def format_measures(engine: Engine, folder: Path, formats: list[str], count: int) -> dict:
    """The default budget per format, sought and streamed: name -> a round's measure."""
    measures = {}
    for fmt in formats:
        (folder / fmt).mkdir()
        tracks = make_tracks(folder / fmt, count, fmt)
        measures[f"{fmt}_sought"] = lambda t=tracks: timed(lambda p: engine.analyse(p), t)
        measures[f"{fmt}_streamed"] = lambda t=tracks: timed(lambda p: streamed(engine, p), t)
    return measures


def timed(fn, tracks: list[Path]) -> float:
    start = time.perf_counter()
    for path in tracks:
        fn(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=5, help="4-minute tracks to analyse")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved repetitions; the best of each is reported",
    )
    parser.add_argument(
        "--original-python",
        metavar="PYTHON",
        help="an interpreter with musicnn==0.1.0 and TensorFlow installed",
    )
    parser.add_argument(
        "--formats",
        default="flac,mp3,m4a",
        help=f"formats timed sought and streamed, of {', '.join(FORMATS)}",
    )
    args = parser.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    if not GTZAN.exists():
        sys.exit(f"{GTZAN} is absent: the benchmark needs the shared GTZAN clips")
    started = time.perf_counter()
    engine = get_engine()
    # The same head without the novelty check (it shares the CNN): what the check costs.
    plain = Engine(EngineConfig(head_path=engine.head_path, novelty_path=None))
    print(
        f"model load: {time.perf_counter() - started:.2f} s; CNN threads: "
        f"{engine.infer.workers}; cores: {os.cpu_count()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "main").mkdir()
        tracks = make_tracks(Path(tmp) / "main", args.tracks)
        seconds = sum(soundfile.info(p).duration for p in tracks)
        engine.analyse(tracks[0])  # warm-up: first-call allocations are not the steady state
        measures = {
            "default": lambda: timed(lambda p: engine.analyse(p), tracks),
            "no_novelty": lambda: timed(lambda p: plain.analyse(p), tracks),
            "full": lambda: timed(lambda p: engine.analyse(p, full=True), tracks),
            "procedure": lambda: timed(lambda p: original_procedure(engine, p), tracks),
            **format_measures(engine, Path(tmp), formats, args.tracks),
        }
        extractor = (
            OriginalExtractor(args.original_python, tracks) if args.original_python else None
        )
        if extractor:
            measures["tensorflow"] = extractor.round
        try:
            best = best_rounds(measures, args.rounds)
        finally:
            if extractor:
                extractor.close()
    default, full, original = best["default"], best["full"], best["procedure"]
    tensorflow = best.get("tensorflow")
    per_track = default / len(tracks)
    print(f"{len(tracks)} tracks, {seconds:.0f} s of audio")
    print(f"default budget: {default:.2f} s wall, {seconds / default:.1f}x real time")
    print(f"--full:         {full:.2f} s wall, {seconds / full:.1f}x real time")
    plain_s = best["no_novelty"]
    print(
        f"default without the novelty check: {plain_s:.2f} s wall, {seconds / plain_s:.1f}x "
        f"real time (the check costs {(default - plain_s) / len(tracks) * 1000:+.1f} ms a track)"
    )
    print(
        f"original musicnn procedure (one patch at a time, full track): {original:.2f} s wall, "
        f"{seconds / original:.1f}x real time"
    )
    print(
        f"speed-up over the original procedure: default {original / default:.1f}x, "
        f"full {original / full:.1f}x"
    )
    if tensorflow is not None:
        print(
            f"original musicnn extractor (TensorFlow): {tensorflow:.2f} s wall, "
            f"{seconds / tensorflow:.1f}x real time; speed-up: default "
            f"{tensorflow / default:.1f}x, full {tensorflow / full:.1f}x"
        )
    for fmt in formats:
        sought, whole = best[f"{fmt}_sought"] / len(tracks), best[f"{fmt}_streamed"] / len(tracks)
        print(
            f"{FORMATS[fmt]}: streamed {whole:.3f} s ({seconds / len(tracks) / whole:.0f}x), "
            f"sought {sought:.3f} s ({seconds / len(tracks) / sought:.0f}x) per 4-minute track"
        )
    print(
        f"rtf_default={seconds / default:.1f} rtf_full={seconds / full:.1f} "
        f"seconds_per_4min_track={per_track:.3f}"
    )


if __name__ == "__main__":
    main()
