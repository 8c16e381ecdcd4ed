"""Batches split over worker threads give what the undivided batch gives."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from classifier.engine.inference import SplitInference, cpu_threads
from classifier.engine.weights import load_musicnn


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> SplitInference:
    return SplitInference(load_musicnn(cache_dir=tmp_path_factory.mktemp("models")), workers=2)


@pytest.mark.parametrize("count", [1, 2, 5])
def test_split_batches_match_the_whole_batch(runner, count):
    patches = np.random.default_rng(count).random((count, 187, 96)).astype(np.float32) * 4
    whole = runner.model(patches)
    split = runner(patches)
    for ours, expected in zip(split, whole, strict=True):
        assert ours.shape == expected.shape and ours.dtype == np.float32
        # products of other shapes may sum in other orders: float rounding of values up to ~100
        np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=1e-5)
    if count > 1:  # each patch keeps its own row, in order
        assert not np.array_equal(split.taggram[0], split.taggram[1])


def test_parts_run_on_their_own_threads_with_blas_on_one(runner):
    # The engine's parallelism is its own: BLAS spreading products over more threads as
    # well would oversubscribe the cores (blas.py). (Other libraries' BLAS, scipy's say,
    # are not numpy's and not the engine's concern.)
    numpy_blas = [p for p in threadpool_info() if "numpy" in Path(p["filepath"]).parent.name]
    assert numpy_blas and all(pool["num_threads"] == 1 for pool in numpy_blas)
    started = threading.Barrier(2, timeout=10)  # both parts at once, or a timeout
    idents = list(runner._workers().map(lambda _: (started.wait(), threading.get_ident()), "ab"))
    assert len({ident for _, ident in idents}) == 2
    assert threading.get_ident() not in {ident for _, ident in idents}


def test_no_count_means_one_worker_per_cpu_thread(runner):
    assert SplitInference(runner.model).workers == cpu_threads() >= 1
