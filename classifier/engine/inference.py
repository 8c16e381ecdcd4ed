"""Eval batches of the CNN split across worker threads, one per CPU thread the engine may use.

numpy releases the GIL in its products, FFTs and elementwise loops, so two threads each
running half a batch with BLAS on one thread keep two cores busy. That beats letting OpenBLAS
spread each product over its own threads: on a shared 2-core machine its threads wait to be
scheduled, and a 16-patch batch ran 3-4x slower than on a single thread (bench/
musicnn_speed.py; blas.py). Results equal the undivided batch's: every patch is computed
alone, in the same order of operations.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from classifier.engine.blas import use_one_blas_thread
from classifier.engine.musicnn import MusiCNN, MusiCNNOutput, concatenate_outputs


def cpu_threads() -> int:
    """The CPU threads this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class SplitInference:
    """Calls `model` on contiguous parts of a batch, in parallel.

    `workers` threads (0: one per CPU thread), each with BLAS on its own thread only.
    """

    def __init__(self, model: MusiCNN, workers: int = 0) -> None:
        self.model = model
        self.workers = workers or cpu_threads()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()
        use_one_blas_thread()

    def __call__(self, patches: np.ndarray) -> MusiCNNOutput:
        parts = min(self.workers, len(patches))
        if parts < 2:
            return self.model(patches)
        outputs = self._workers().map(self.model, np.array_split(patches, parts))
        return concatenate_outputs(list(outputs))

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            # A forked child (a prefork Celery worker) inherits the pool but not its threads.
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="musicnn")
                self._pid = os.getpid()
            return self._pool
