"""How many threads numpy's BLAS (OpenBLAS) runs a matrix product on.

BLAS's own threads pay only for large products on an idle machine. On a busy one (a worker
beside the web app, other processes on the cores) waiting for them to be scheduled made small
products 100x slower (0.9 s instead of 9 ms for a 4-minute track's mel; 12 ms instead of
1.3 ms for an index query of 20,000 rows), and the CNN's batches 3-4x slower than on one
thread (bench/musicnn_speed.py): the engine parallelises by itself (inference.py) instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import lru_cache

from threadpoolctl import ThreadpoolController


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[object]:
    """A context in which numpy's BLAS runs on the calling thread only."""
    limit: AbstractContextManager[object] = _controller().limit(limits=1, user_api="blas")
    return limit


def use_one_blas_thread() -> None:
    """From now on, in this process, BLAS runs every product on its calling thread."""
    _controller().limit(limits=1, user_api="blas")  # kept: nothing restores it
