"""How fast the numpy musicnn runs on this machine's CPU, and which layout choices pay.

    .venv/bin/python bench/musicnn_speed.py [--batches 16 64] [--repeats 5] [--threads 2]

Prints patches per second (best and median wall clock, and per CPU-second) for the shipped
configuration (the batch split over --threads worker threads, BLAS on one thread) and for the
alternatives it was chosen over: the whole batch with OpenBLAS on --threads threads, the whole
batch on one thread, and on one thread other step sizes for the temporal blocks' banded
products and the timbral blocks' DFT products. Variants run round-robin, so that each meets
the same load on a shared machine; the load average is printed too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from classifier.engine import musicnn  # noqa: E402
from classifier.engine.inference import SplitInference, cpu_threads  # noqa: E402
from classifier.engine.musicnn import MusiCNN  # noqa: E402
from classifier.engine.weights import CACHE_FILE, load_musicnn  # noqa: E402

Run = Callable[[np.ndarray], object]


def on_blas_threads(model: MusiCNN, threads: int) -> Run:
    """The whole batch in one call, OpenBLAS spreading each product over `threads` threads."""

    def run(patches: np.ndarray) -> object:
        with threadpool_limits(limits=threads, user_api="blas"):
            return model(patches)

    return run


@contextmanager
def temporal_block(size: int) -> Iterator[None]:
    shipped = musicnn.TEMPORAL_BLOCK
    musicnn.TEMPORAL_BLOCK = size
    try:
        yield
    finally:
        musicnn.TEMPORAL_BLOCK = shipped


def with_temporal_block(weights: musicnn.Weights, size: int) -> Run:
    """A model whose temporal kernels are banded for `size` outputs at a time."""
    with temporal_block(size):
        blocks = [
            musicnn.pooled_block(weights, f"temporal.{i}", musicnn._tf_same_padding(k))
            for i, k in enumerate(musicnn.TEMPORAL_KERNELS)
        ]
    model = MusiCNN(weights)
    model.frontend_blocks = (*model.frontend_blocks[:2], *blocks)
    return model


def with_spectral_block(model: MusiCNN, rows: int) -> Run:
    """The model with the timbral DFT products taken `rows` patch-frames at a time."""

    def run(patches: np.ndarray) -> object:
        shipped = musicnn.SPECTRAL_BLOCK
        musicnn.SPECTRAL_BLOCK = rows
        try:
            return model(patches)
        finally:
            musicnn.SPECTRAL_BLOCK = shipped

    return run


def variants(weights: musicnn.Weights, threads: int) -> dict[str, Run]:
    shipped = SplitInference(MusiCNN(weights), threads)  # BLAS on one thread from here on
    model = shipped.model
    steps = {
        f"one thread, temporal steps of {size}": with_temporal_block(weights, size)
        for size in (4, 16, 32)
    }
    rows = {
        f"one thread, DFT steps of {n} rows": with_spectral_block(model, n) for n in (16, 64, 128)
    }
    return {
        f"shipped (split over {threads} one-thread workers)": shipped,
        f"whole batch, OpenBLAS on {threads} threads": on_blas_threads(model, threads),
        "whole batch on one thread (shipped steps)": model,
        **steps,
        **rows,
    }


def measure(call: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def rounds(runs: dict[str, Run], batch: int, repeats: int) -> dict[str, tuple[float, ...]]:
    """Best and median wall and best CPU seconds per variant, measured round-robin."""
    patches = (np.random.default_rng(0).random((batch, 187, 96)) * 3).astype(np.float32)
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats + 1):
        for name, run in runs.items():
            wall, cpu = measure(lambda run=run: run(patches))
            walls[name].append(wall)
            cpus[name].append(cpu)
            # OpenBLAS's threads spin a while after a product they shared: let them go to
            # sleep before the next variant, which would otherwise compete with them.
            time.sleep(0.5)
    # The first round warms up.
    return {
        name: (min(walls[name][1:]), statistics.median(walls[name][1:]), min(cpus[name][1:]))
        for name in runs
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=cpu_threads())
    parser.add_argument("--only-shipped", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        load_musicnn(cache_dir=Path(cache))
        weights = load_file(str(Path(cache) / CACHE_FILE))
    runs = variants(weights, args.threads)
    if args.only_shipped:
        runs = dict(list(runs.items())[:1])
    print(
        f"numpy {np.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for batch in args.batches:
        for name, (best, median, cpu) in rounds(runs, batch, args.repeats).items():
            print(
                f"batch {batch:3d}  {name:42s} {batch / best:6.1f} patches/s best, "
                f"{batch / median:6.1f} median, {batch / cpu:6.1f} per CPU-second"
            )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
