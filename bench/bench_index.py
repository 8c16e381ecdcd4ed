"""Benchmark the catalog's nearest-neighbour index on synthetic embeddings.

    .venv/bin/python bench/bench_index.py                  # 1,000,000 vectors, 1,000 queries
    .venv/bin/python bench/bench_index.py --n 200000 --library hnswlib   # an alternative

It builds recommender.index.GenreIndex (FAISS IVF-Flat; the production code path, files and
all) over --n vectors of the engine's dimension as ONE partition, the worst case where the
whole catalog shares a genre, then times single queries (one thread, as in a web request)
and compares their top 10 with exact search. --library faiss-hnsw / hnswlib / usearch time
HNSW graphs from those libraries on the same data, for the comparison in
recommender/README.md (hnswlib and usearch are not requirements: pip install them to try).

The vectors are synthetic but shaped like embeddings: points around 1,000 cluster centres in
a 24-dimensional latent space, mapped linearly to 200 dimensions, plus isotropic noise
(--noise). Independent Gaussian vectors (--iid) have no near neighbours at all in 200-d, so
every approximate method scores near zero recall on them; that is printed when asked for
but is not what a catalog looks like.

The last line reads: p50_ms=<x> p95_ms=<x> recall_at_10=<x> rss_mb=<x>
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recommender.index import NPROBE, GenreIndex, normalised

DIM = 200
LATENT = 24
CLUSTERS = 1000
# The HNSW alternatives' settings: larger M / efConstruction build too slowly on 2 cores.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 64


def synthetic(n: int, seed: int, noise: float, iid: bool, dim: int = DIM) -> np.ndarray:
    """n unit vectors, built in blocks to keep the peak memory near the result's size."""
    out = np.empty((n, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(1).standard_normal((LATENT, dim)).astype(np.float32)
    centres = 2 * np.random.default_rng(2).standard_normal((CLUSTERS, LATENT)).astype(np.float32)
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        if iid:
            block = rng.standard_normal((size, dim), dtype=np.float32)
        else:
            latent = centres[rng.integers(0, CLUSTERS, size)]
            latent += rng.standard_normal((size, LATENT), dtype=np.float32)
            block = latent @ mix + noise * rng.standard_normal((size, dim), dtype=np.float32)
        out[start : start + size] = normalised(block)
    return out


def exact_top10(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    tops = []
    for start in range(0, len(queries), 25):
        scores = data @ queries[start : start + 25].T  # (n, 25): data stays contiguous
        tops.append(np.argpartition(scores, -10, axis=0)[-10:].T.copy())  # not a view
    return np.vstack(tops)


def memory_mb() -> dict[str, float]:
    """VmRSS and its anonymous and file-backed (memory-mapped, reclaimable) parts, in MB."""
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                found[key] = int(value.split()[0]) / 1024
    return found


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Recommender:
    """The production index: GenreIndex (FAISS IVF-Flat) over a temporary folder."""

    settings = f"IVF-Flat, nlist 2*sqrt(n), nprobe {NPROBE}"

    def __init__(self, data: np.ndarray, folder: Path) -> None:
        self.index = GenreIndex(folder, exact_below=0)
        self.index.add(np.arange(len(data)), data)
        assert self.index.uses_ann
        self.settings = f"IVF-Flat, nlist {self.index._ann.nlist}, nprobe {self.index.nprobe}"

    def search(self, query: np.ndarray) -> list[int]:
        return [track for track, _ in self.index.search(query, 10)]


class FaissHnsw:
    settings = f"HNSW M {HNSW_M}, efConstruction {HNSW_EF_CONSTRUCTION}, efSearch {HNSW_EF_SEARCH}"

    def __init__(self, data: np.ndarray, folder: Path) -> None:
        import faiss

        self.index = faiss.IndexHNSWFlat(data.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        self.index.add(data)
        self.index.hnsw.efSearch = HNSW_EF_SEARCH

    def search(self, query: np.ndarray) -> list[int]:
        return self.index.search(query[None, :], 10)[1][0].tolist()


class Hnswlib:
    settings = FaissHnsw.settings

    def __init__(self, data: np.ndarray, folder: Path) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=data.shape[1])
        self.index.init_index(
            max_elements=len(data), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION
        )
        self.index.add_items(data, np.arange(len(data)))
        self.index.set_ef(HNSW_EF_SEARCH)
        self.index.set_num_threads(1)

    def search(self, query: np.ndarray) -> list[int]:
        return self.index.knn_query(query, 10)[0][0].tolist()


class Usearch:
    settings = FaissHnsw.settings

    def __init__(self, data: np.ndarray, folder: Path) -> None:
        from usearch.index import Index

        self.index = Index(
            ndim=data.shape[1],
            metric="ip",
            dtype="f32",
            connectivity=HNSW_M,
            expansion_add=HNSW_EF_CONSTRUCTION,
            expansion_search=HNSW_EF_SEARCH,
        )
        self.index.add(np.arange(len(data)), data, threads=os.cpu_count() or 1)

    def search(self, query: np.ndarray) -> list[int]:
        return self.index.search(query, 10, threads=1).keys.tolist()


LIBRARIES = {
    "recommender": Recommender,
    "faiss-hnsw": FaissHnsw,
    "hnswlib": Hnswlib,
    "usearch": Usearch,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--library", choices=sorted(LIBRARIES), default="recommender")
    parser.add_argument("--noise", type=float, default=3.0)
    parser.add_argument("--iid", action="store_true", help="independent Gaussian vectors")
    args = parser.parse_args()

    import faiss

    started = time.perf_counter()
    data = synthetic(args.n, seed=0, noise=args.noise, iid=args.iid)
    queries = synthetic(args.queries, seed=99, noise=args.noise, iid=args.iid)
    print(
        f"data: {args.n:,} x {DIM} float32 ({data.nbytes / 2**20:,.0f} MB), "
        f"{'iid Gaussian' if args.iid else f'clustered, noise {args.noise}'}; "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )

    started = time.perf_counter()
    truth = exact_top10(data, queries)
    print(
        f"exact top 10 of {args.queries} queries: {time.perf_counter() - started:.1f} s", flush=True
    )

    with tempfile.TemporaryDirectory(prefix="bench-index-") as folder:
        started = time.perf_counter()
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        index = LIBRARIES[args.library](data, Path(folder))
        print(
            f"{args.library}: built in {time.perf_counter() - started:.1f} s "
            f"({index.settings}; {os.cpu_count()} threads)",
            flush=True,
        )
        del data
        gc.collect()

        faiss.omp_set_num_threads(1)  # a web request asks one query at a time
        for query in queries[:20]:  # warm caches before timing
            index.search(query)
        timings, hits = [], 0
        for query, expected in zip(queries, truth, strict=True):
            begin = time.perf_counter()
            found = index.search(query)
            timings.append(time.perf_counter() - begin)
            hits += len(set(found) & set(expected.tolist()))
        timings_ms = np.array(timings) * 1000
        p50, p95 = np.percentile(timings_ms, [50, 95])
        recall = hits / (10 * len(queries))
        memory = memory_mb()
        print(
            f"latency over {len(queries)} queries: p50 {p50:.3f} ms, p95 {p95:.3f} ms, "
            f"p99 {np.percentile(timings_ms, 99):.3f} ms, max {timings_ms.max():.3f} ms"
        )
        print(
            f"memory: {memory['VmRSS']:,.0f} MB resident with the index loaded "
            f"({memory.get('RssAnon', 0):,.0f} MB anonymous, {memory.get('RssFile', 0):,.0f} MB "
            f"memory-mapped files); peak {peak_mb():,.0f} MB (includes building the data "
            f"and the exact search)"
        )
        print(
            f"p50_ms={p50:.3f} p95_ms={p95:.3f} recall_at_10={recall:.4f} "
            f"rss_mb={memory['VmRSS']:.0f}"
        )


if __name__ == "__main__":
    main()
