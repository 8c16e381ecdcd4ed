"""Start-up and CNN speed of `python -m classifier.engine classify` on one 4-minute MP3.

    .venv/bin/python bench/startup.py [--rounds 7] [--compare OTHER_CHECKOUT]

Builds a 4-minute MP3 of GTZAN clips (bench/tracks.py), then each round runs classify on it
in a fresh process (wall time: start-up, decoding, the CNN, the head), and the CNN alone in
another fresh process: ms per patch of 16-patch batches through the engine's own inference
(Engine.run_chunks) on one thread and on the engine's default threads. With --compare, the
same measures for another checkout (a worktree of an older commit, say), alternating with
this one round by round so that both meet the same load on a shared machine. Prints the
median of each. The model weights are those each checkout finds in its default cache folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.tracks import GTZAN, make_tracks  # noqa: E402

# Runs in the checkout measured: the API it uses (Engine.cnn_only, run_chunks, Chunks) is the
# same before and after the numpy engine.
CNN_MS_PER_PATCH = """
import sys, time
import numpy as np
from classifier.engine.features import Chunks
from classifier.engine.runner import Engine, EngineConfig
engine = Engine.cnn_only(EngineConfig(threads=int(sys.argv[1])))
patches = (np.random.default_rng(0).random((16, 187, 96)) * 3).astype(np.float32)
chunks = Chunks(patches, np.arange(16) * 3.0, 48.0, 16, 0)
engine.run_chunks(chunks, "penultimate")  # warm-up: first-call allocations
times = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    engine.run_chunks(chunks, "penultimate")
    times.append(time.perf_counter() - start)
print(min(times) * 1000 / len(patches))
"""


def classify_seconds(checkout: Path, track: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "classifier.engine", "classify", str(track)],
        cwd=checkout,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def cnn_ms(checkout: Path, threads: int, repeats: int) -> float:
    """The CNN's ms per patch in a fresh process: the best of `repeats` batches."""
    run = subprocess.run(
        [sys.executable, "-c", CNN_MS_PER_PATCH, str(threads), str(repeats)],
        cwd=checkout,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(run.stdout.split()[-1])


def measures(checkout: Path, track: Path, repeats: int) -> dict[str, Callable[[], float]]:
    return {
        "classify s": lambda: classify_seconds(checkout, track),
        "CNN ms/patch, 1 thread": lambda: cnn_ms(checkout, 1, repeats),
        "CNN ms/patch, default threads": lambda: cnn_ms(checkout, 0, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5, help="CNN batches timed per round")
    parser.add_argument("--compare", type=Path, metavar="CHECKOUT", help="another checkout")
    args = parser.parse_args()
    if not GTZAN.exists():
        sys.exit(f"{GTZAN} is absent: the benchmark needs the shared GTZAN clips")
    checkouts = {"this": REPO} | ({"compared": args.compare.resolve()} if args.compare else {})
    with tempfile.TemporaryDirectory() as tmp:
        track = make_tracks(Path(tmp), 1, "mp3")[0]
        for checkout in checkouts.values():
            classify_seconds(checkout, track)  # the first run converts the weights if needed
        values: dict[str, list[float]] = {}
        for n in range(args.rounds):
            for name, checkout in checkouts.items():
                for measure, run in measures(checkout, track, args.repeats).items():
                    values.setdefault(f"{name}: {measure}", []).append(run())
            print(f"round {n + 1}: load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{os.cpu_count()} CPUs; medians of {args.rounds} rounds (4-minute MP3, 192 kbps)")
    for label, series in values.items():
        print(f"{label:45s} {statistics.median(series):8.3f}  (min {min(series):.3f})")


if __name__ == "__main__":
    main()
