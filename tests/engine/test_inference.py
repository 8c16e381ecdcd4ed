"""Batches split over single-threaded workers give what the undivided batch gives."""

from __future__ import annotations

import threading

import pytest
import torch

from classifier.engine.inference import SplitInference
from classifier.engine.weights import load_musicnn


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> SplitInference:
    return SplitInference(load_musicnn(cache_dir=tmp_path_factory.mktemp("models")), workers=2)


@pytest.mark.parametrize("count", [1, 2, 5])
def test_split_batches_match_the_whole_batch(runner, count):
    patches = torch.rand(count, 187, 96, generator=torch.Generator().manual_seed(count)) * 4
    with torch.inference_mode():
        whole = runner.model(patches)
        split = runner(patches)
    for ours, expected in zip(split, whole, strict=True):
        assert ours.shape == expected.shape
        # one thread and two sum in different orders: float rounding of values up to ~100
        torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-5)
    if count > 1:  # each patch keeps its own row, in order
        assert not torch.equal(split.taggram[0], split.taggram[1])


def test_workers_run_on_one_thread_and_leave_others_alone(runner):
    before = torch.get_num_threads()
    pool = runner._workers()
    in_workers = list(pool.map(lambda _: torch.get_num_threads(), range(4)))
    assert in_workers == [1, 1, 1, 1]
    assert torch.get_num_threads() == before
    started_later: list[int] = []
    thread = threading.Thread(target=lambda: started_later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert started_later == [before]
