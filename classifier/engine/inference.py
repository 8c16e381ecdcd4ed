"""Eval batches of the CNN split across single-threaded workers, one per CPU thread torch uses.

On musicnn, two halves of a batch each run on one intra-op thread finish about 20% sooner than
the whole batch on two intra-op threads (bench/musicnn_speed.py): most of the model's ops are
small (the front-end runs one patch at a time), and forking and joining threads for each of
them costs more than it gains. Results match the undivided batch to float rounding.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from classifier.engine.musicnn import MusiCNN, MusiCNNOutput


class SplitInference:
    """Calls `model` (in eval mode) on contiguous parts of a batch, in parallel."""

    def __init__(self, model: MusiCNN, workers: int | None = None) -> None:
        self.model = model
        self.workers = workers or torch.get_num_threads()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def __call__(self, patches: torch.Tensor) -> MusiCNNOutput:
        parts = min(self.workers, len(patches))
        if parts < 2:
            whole: MusiCNNOutput = self.model(patches)
            return whole
        outputs = list(self._workers().map(self._run, torch.tensor_split(patches, parts)))
        return MusiCNNOutput(*(torch.cat(column) for column in zip(*outputs, strict=True)))

    def _run(self, part: torch.Tensor) -> MusiCNNOutput:
        with torch.inference_mode():
            output: MusiCNNOutput = self.model(part)
            return output

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            # A forked child (a prefork Celery worker) inherits the pool but not its threads.
            if self._pool is None or self._pid != os.getpid():
                self._pool = start_single_threaded_pool(self.workers)
                self._pid = os.getpid()
            return self._pool


def start_single_threaded_pool(workers: int) -> ThreadPoolExecutor:
    """A pool of `workers` started threads, each with one torch intra-op thread.

    torch.set_num_threads is per thread for OpenMP but also records the count that threads
    take when they first use torch; each worker takes it first, then sets its own, and the
    caller's count is put back once every worker has its own.
    """
    before = torch.get_num_threads()
    ready = threading.Barrier(workers + 1)

    def start() -> None:
        torch.get_num_threads()  # this thread's first use: it takes the recorded count now
        torch.set_num_threads(1)
        ready.wait()

    pool = ThreadPoolExecutor(workers, thread_name_prefix="musicnn")
    for _ in range(workers):
        pool.submit(start)
    ready.wait()
    torch.set_num_threads(before)
    return pool
