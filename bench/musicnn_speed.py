"""How fast the musicnn port runs on this machine's CPU, and which layout choices pay.

    .venv/bin/python bench/musicnn_speed.py [--batches 16 64] [--repeats 5] [--threads 2]

Prints patches per second (best and median wall clock, and per CPU-second) for the shipped
configuration and for the alternatives it was chosen over: the timbral convolutions computed
directly instead of through the DFT over frequency, other front-end group sizes, and the plain
ReLU -> batch norm -> max order on the full conv maps. The load average is printed
too: on a shared machine other processes skew wall-clock figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from classifier.engine import musicnn
from classifier.engine.inference import SplitInference
from classifier.engine.musicnn import MusiCNN
from classifier.engine.weights import load_musicnn


@contextmanager
def plain_pooling(model: MusiCNN) -> Iterator[None]:
    """Front-end blocks take their training path: ReLU and batch norm on the full map, then max.

    Their batch norms stay in eval mode, so the outputs are the same.
    """
    blocks = [*model.timbral, *model.temporal]
    for block in blocks:
        block.training = True
    try:
        yield
    finally:
        for block in blocks:
            block.training = False


@contextmanager
def frontend_group(size: int) -> Iterator[None]:
    shipped = musicnn.FRONTEND_GROUP
    musicnn.FRONTEND_GROUP = size
    try:
        yield
    finally:
        musicnn.FRONTEND_GROUP = shipped


@contextmanager
def unsplit() -> Iterator[None]:
    """The batch runs as one call on torch's intra-op threads (SplitInference not used)."""
    global run  # noqa: PLW0603
    shipped = run
    run = shipped.model
    try:
        yield
    finally:
        run = shipped


@contextmanager
def direct_convolution() -> Iterator[None]:
    """The timbral blocks convolve directly (conv2d) rather than through the DFT."""
    musicnn.SPECTRAL = False
    try:
        yield
    finally:
        musicnn.SPECTRAL = True


# What one round calls on the batch: the engine's SplitInference, unless a variant swaps it.
run: Callable[[torch.Tensor], object]


def measure(call: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def variants(model: MusiCNN, batch: int) -> dict[str, Callable[[], AbstractContextManager]]:
    """Each variant is a context around one call of the model on the batch (eval mode)."""
    shipped = musicnn.FRONTEND_GROUP
    others = {
        f"front-end groups of {size}": (lambda size=size: frontend_group(size))
        for size in (1, 2, 4)
        if size != shipped
    }
    return {
        f"shipped (split over {torch.get_num_threads()} one-thread workers)": nullcontext,
        f"whole batch on {torch.get_num_threads()} threads, not split": unsplit,
        "timbral convs direct, not by DFT": direct_convolution,
        **others,
        f"whole batch ({batch}) at once": lambda: frontend_group(batch),
        "plain ReLU/BN/max pooling": lambda: plain_pooling(model),
        "whole batch + plain pooling (naive port)": lambda: _naive(model, batch),
    }


@contextmanager
def _naive(model: MusiCNN, batch: int) -> Iterator[None]:
    with frontend_group(batch), plain_pooling(model):
        yield


def rounds(model: MusiCNN, batch: int, repeats: int, only_shipped: bool) -> dict[str, tuple]:
    """Best and median wall and best CPU seconds per variant, measured round-robin.

    Round-robin over the variants gives each the same odds of running while other processes
    on a shared machine are busy; the best of several rounds is the least disturbed.
    """
    patches = torch.rand(batch, 187, 96, generator=torch.Generator().manual_seed(0)) * 3
    chosen = variants(model, batch)
    if only_shipped:
        chosen = dict(list(chosen.items())[:1])
    walls: dict[str, list[float]] = {name: [] for name in chosen}
    cpus: dict[str, list[float]] = {name: [] for name in chosen}
    with torch.inference_mode():
        for _ in range(repeats + 1):
            for name, context in chosen.items():
                with context():
                    wall, cpu = measure(lambda: run(patches))
                walls[name].append(wall)
                cpus[name].append(cpu)
    # The first round warms up.
    return {
        name: (min(walls[name][1:]), statistics.median(walls[name][1:]), min(cpus[name][1:]))
        for name in chosen
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--only-shipped", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as cache:
        model = load_musicnn(cache_dir=Path(cache))
    global run  # noqa: PLW0603
    run = SplitInference(model)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for batch in args.batches:
        for name, (best, median, cpu) in rounds(
            model, batch, args.repeats, args.only_shipped
        ).items():
            print(
                f"batch {batch:3d}  {name:42s} {batch / best:6.1f} patches/s best, "
                f"{batch / median:6.1f} median, {batch / cpu:6.1f} per CPU-second"
            )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
