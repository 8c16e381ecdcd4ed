"""Nearest-neighbour search over catalog embeddings, one partition per primary genre.

"Songs like this" only ever looks within one genre, so each genre is its own partition: a
query never pays for (or is filtered against) other genres' vectors, and a partition's
size decides its method. Below RECOMMENDER_EXACT_BELOW vectors it is searched exactly (one
matrix-vector product); from there on through a FAISS inverted-file index (IVF-Flat:
k-means cells, a query scans the NPROBE nearest cells exactly; inner product over unit
vectors, i.e. cosine). See recommender/README.md for the measurements behind the choice
(HNSW from FAISS, hnswlib and usearch was measured too).

On disk, under RECOMMENDER_INDEX_DIR (DATA_DIR/index/ by default), a partition is
  vectors.f32   append-only float32 rows (unit length), the source of truth, memory-mapped;
  ids.i64       append-only catalog track ids, row for row (the id map);
  ivf.faiss     an IVF index over the first `ntotal` rows, rewritten every SNAPSHOT_EVERY
                rows and retrained from scratch each time the partition has grown fourfold;
  generation    changes when the partition is rebuilt, so readers start over;
  lock          taken (flock) by writers, so several workers may add at once.
Readers (web processes) notice growth by file size and map the new rows; rows not yet in
the IVF snapshot are searched exactly and merged. A restart reads everything back.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np

from classifier.engine.blas import one_blas_thread
from classifier.engine.files import atomic_write

DIM = 200
NPROBE = 16  # cells scanned per query
CELLS_PER_SQRT = 2  # nlist = 2 * sqrt(rows) when (re)trained
TRAIN_PER_CELL = 32  # k-means training sample: this many rows per cell
TRAIN_ITERATIONS = 10
SNAPSHOT_EVERY = 1000


def cells_for(rows: int) -> int:
    return int(min(16_384, max(16, CELLS_PER_SQRT * rows**0.5)))


def normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` for the block: writers of every process take turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class GenreIndex:
    """One partition: the vectors of one genre, searched exactly or through FAISS IVF."""

    def __init__(
        self,
        directory: Path,
        dim: int = DIM,
        exact_below: int = 20_000,
        nprobe: int = NPROBE,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> None:
        self.directory = Path(directory)
        self.dim = dim
        self.exact_below = exact_below
        self.nprobe = nprobe
        self.snapshot_every = snapshot_every
        self._vectors = np.empty((0, dim), dtype=np.float32)  # a memory map of vectors.f32
        self._ids = np.empty(0, dtype=np.int64)
        self._count = 0
        self._ann = None  # faiss.IndexIVFFlat over the first ann.ntotal rows
        self._ann_stamp: tuple[int, int] | None = None
        self._generation: tuple[int, int, int] | None = None
        self._mutex = threading.Lock()

    # --- files ----------------------------------------------------------------------------

    @property
    def _vector_file(self) -> Path:
        return self.directory / "vectors.f32"

    @property
    def _id_file(self) -> Path:
        return self.directory / "ids.i64"

    @property
    def _ann_file(self) -> Path:
        return self.directory / "ivf.faiss"

    @property
    def _generation_file(self) -> Path:
        return self.directory / "generation"

    def _generation_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self._generation_file.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_ino, stat.st_size)

    def _rows_on_disk(self) -> int:
        try:
            vector_bytes = self._vector_file.stat().st_size
            id_bytes = self._id_file.stat().st_size
        except FileNotFoundError:
            return 0
        # A writer appends the vector, then its id: only rows with both are complete.
        return min(vector_bytes // (4 * self.dim), id_bytes // 8)

    def _writing(self) -> AbstractContextManager[None]:
        return file_lock(self.directory / "lock")

    # --- reading --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read rows appended since the last look, and a newer ann snapshot if any."""
        with self._mutex:
            generation = self._generation_stamp()
            rows = self._rows_on_disk()
            if generation != self._generation or rows < self._count:
                # The partition was rebuilt (or is new to us): read it from the start.
                self._vectors = np.empty((0, self.dim), dtype=np.float32)
                self._ids, self._count = self._ids[:0], 0
                self._ann, self._ann_stamp = None, None
                self._generation = generation
            if rows > self._count:
                self._read_rows(self._count, rows)
            self._load_ann()

    def _read_rows(self, start: int, stop: int) -> None:
        # The vectors stay on disk, mapped: shared with other processes through the page
        # cache, and only the rows a search touches are read.
        self._vectors = np.memmap(
            self._vector_file, dtype=np.float32, mode="r", shape=(stop, self.dim)
        )
        with open(self._id_file, "rb") as handle:
            handle.seek(start * 8)
            ids = np.fromfile(handle, dtype=np.int64, count=stop - start)
        self._ids = np.concatenate([self._ids[:start], ids])
        self._count = stop

    def _load_ann(self) -> None:
        try:
            stat = self._ann_file.stat()
        except FileNotFoundError:
            self._ann, self._ann_stamp = None, None
            return
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._ann_stamp:
            import faiss

            ann = faiss.read_index(str(self._ann_file))
            if ann.ntotal <= self._count:
                self._ann, self._ann_stamp = ann, stamp

    def __len__(self) -> int:
        self.refresh()
        return self._count

    def ids(self) -> np.ndarray:
        """Every row's track id, in row order (a re-analysed track appears more than once)."""
        self.refresh()
        return self._ids[: self._count].copy()

    @property
    def uses_ann(self) -> bool:
        return self._ann is not None and self._count >= self.exact_below

    def search(self, vector: np.ndarray, k: int = 10) -> list[tuple[int, float]]:
        """The k nearest rows to `vector` by cosine: (track id, similarity), best first.

        A track added twice (re-analysed) appears once, with its latest vector's score.
        """
        self.refresh()
        if self._count == 0 or k <= 0:
            return []
        query = normalised(vector)
        # Room for duplicates (a re-analysed track has two rows) before trimming to k.
        want = min(self._count, 2 * k + 10)
        if self.uses_ann:
            rows, scores = self._search_ivf(query, want)
        else:
            rows, scores = self._search_exact(query, 0, self._count, want)
        return self._unique(rows, scores, k)

    def _search_exact(
        self, query: np.ndarray, start: int, stop: int, want: int
    ) -> tuple[np.ndarray, np.ndarray]:
        with one_blas_thread():
            scores = self._vectors[start:stop] @ query[0]
        want = min(want, len(scores))
        if want == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        top = np.argpartition(-scores, want - 1)[:want]
        return top + start, scores[top]

    def _search_ivf(self, query: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        ann = self._ann
        params = faiss.SearchParametersIVF(nprobe=self.nprobe)
        scores, rows = ann.search(query, want, params=params)
        keep = rows[0] >= 0
        rows, scores = rows[0][keep], scores[0][keep]
        if ann.ntotal < self._count:  # rows added since the snapshot: exactly
            tail_rows, tail_scores = self._search_exact(query, ann.ntotal, self._count, want)
            rows = np.concatenate([rows, tail_rows])
            scores = np.concatenate([scores, tail_scores])
        return rows, scores

    def _unique(self, rows: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
        # The latest row of an id wins, so a re-analysed track uses its new embedding.
        latest: dict[int, tuple[int, float]] = {}
        for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
            track = int(self._ids[row])
            if track not in latest or row > latest[track][0]:
                latest[track] = (row, score)
        ranked = sorted(latest.items(), key=lambda item: -item[1][1])
        return [(track, float(score)) for track, (_, score) in ranked[:k]]

    # --- writing --------------------------------------------------------------------------

    def add(self, ids: Iterable[int], vectors: np.ndarray, snapshot: bool = True) -> None:
        """Append rows (under the lock), and refresh the IVF snapshot when it is due.

        snapshot=False defers that to a later add or flush() (bulk loading).
        """
        ids = np.asarray(list(ids), dtype=np.int64)
        vectors = normalised(vectors)
        if len(ids) != len(vectors) or vectors.shape[1] != self.dim:
            raise ValueError(
                f"need one {self.dim}-d vector per id, got {vectors.shape} for {len(ids)} ids"
            )
        with self._writing():
            rows = self._rows_on_disk()
            self._truncate(rows)  # drop a half-written row a crashed writer left
            for path, array in ((self._vector_file, vectors), (self._id_file, ids)):
                with open(path, "ab") as handle:
                    array.tofile(handle)
                    handle.flush()
                    os.fsync(handle.fileno())
            self.refresh()
            if snapshot and self._snapshot_due():
                self._write_snapshot()

    def _truncate(self, rows: int) -> None:
        for path, width in ((self._vector_file, 4 * self.dim), (self._id_file, 8)):
            if path.exists() and path.stat().st_size != rows * width:
                os.truncate(path, rows * width)

    def _snapshot_due(self) -> bool:
        if self._count < self.exact_below:
            return False
        in_ann = self._ann.ntotal if self._ann is not None else 0
        return in_ann == 0 or self._count - in_ann >= self.snapshot_every

    def _write_snapshot(self) -> None:
        import faiss

        ann = self._ann
        if ann is None or cells_for(self._count) >= 2 * ann.nlist:
            ann = self._trained_ivf()  # first time, or grown fourfold since training
        ann.add(np.ascontiguousarray(self._vectors[ann.ntotal : self._count]))
        with atomic_write(self._ann_file, mode=0o644) as partial:
            faiss.write_index(ann, str(partial))
        self._ann, self._ann_stamp = None, None
        self._load_ann()

    def _trained_ivf(self):  # -> faiss.IndexIVFFlat
        import faiss

        cells = cells_for(self._count)
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, cells, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = TRAIN_ITERATIONS
        ivf.cp.min_points_per_centroid = 1  # quiet: the sample is deliberately small
        size = min(self._count, TRAIN_PER_CELL * cells)
        rows = np.sort(np.random.default_rng(0).choice(self._count, size, replace=False))
        ivf.train(np.ascontiguousarray(self._vectors[rows]))
        return ivf

    def clear(self) -> None:
        """Remove every row; readers elsewhere notice the new generation and start over."""
        with self._writing():
            for path in (self._vector_file, self._id_file, self._ann_file):
                path.unlink(missing_ok=True)
            with atomic_write(self._generation_file, mode=0o644) as partial:
                partial.write_text(uuid.uuid4().hex)
            self.refresh()

    def flush(self) -> None:
        """Fold every row into the IVF snapshot now (the catalog does this after a build)."""
        with self._writing():
            self.refresh()
            in_ann = self._ann.ntotal if self._ann is not None else 0
            if self._count >= self.exact_below and self._count > in_ann:
                self._write_snapshot()


def partition_name(genre: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "_", genre.strip().lower()) or "_"


class CatalogIndex:
    """The catalog's partitions under one folder, one per primary genre."""

    def __init__(self, root: Path, exact_below: int = 20_000, dim: int = DIM) -> None:
        self.root = Path(root)
        self.exact_below = exact_below
        self.dim = dim
        self._partitions: dict[str, GenreIndex] = {}
        self._lock = threading.Lock()

    def partition(self, genre: str) -> GenreIndex:
        name = partition_name(genre)
        with self._lock:
            if name not in self._partitions:
                self._partitions[name] = GenreIndex(
                    self.root / name, dim=self.dim, exact_below=self.exact_below
                )
            return self._partitions[name]

    def add(self, genre: str, track_id: int, vector: np.ndarray) -> None:
        self.partition(genre).add([track_id], np.asarray(vector)[None, :])

    def search(self, genre: str, vector: np.ndarray, k: int = 10) -> list[tuple[int, float]]:
        return self.partition(genre).search(vector, k)

    def genres(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "ids.i64").exists())

    def rebuild(
        self, rows: Iterable[tuple[str, int, list[float]]], batch: int = 10_000
    ) -> dict[str, int]:
        """Replace every partition with `rows` (genre, track id, embedding), streamed."""
        counts: dict[str, int] = {}
        pending: dict[str, tuple[list[int], list[list[float]]]] = {}

        def write(name: str) -> None:
            ids, vectors = pending.pop(name)
            self.partition(name).add(ids, np.asarray(vectors, dtype=np.float32), snapshot=False)

        for genre, track_id, vector in rows:
            name = partition_name(genre)
            if name not in counts:
                self.partition(name).clear()
                counts[name] = 0
            ids, vectors = pending.setdefault(name, ([], []))
            ids.append(track_id)
            vectors.append(vector)
            counts[name] += 1
            if len(ids) >= batch:
                write(name)
        for name in list(pending):
            write(name)
        for name in self.genres():
            if name not in counts:
                self.partition(name).clear()
                counts[name] = 0
        for name in counts:
            self.partition(name).flush()
        return counts


_indexes: dict[tuple[Path, int], CatalogIndex] = {}
_indexes_lock = threading.Lock()


def catalog_index() -> CatalogIndex:
    """The process-wide index at RECOMMENDER_INDEX_DIR (kept open across requests)."""
    from recommender import conf

    key = (conf.index_dir(), conf.exact_below())
    with _indexes_lock:
        if key not in _indexes:
            _indexes[key] = CatalogIndex(key[0], exact_below=key[1])
        return _indexes[key]


# Each user's own library is one partition of its own (a library's "songs like this" looks
# at every genre), under RECOMMENDER_LIBRARY_INDEX_DIR/<user id>/; a process keeps the most
# recently asked few open (a large one's IVF snapshot is held in memory).
LIBRARIES_OPEN = 8
_libraries: OrderedDict[tuple[Path, int, int], GenreIndex] = OrderedDict()


def library_index(owner_id: int) -> GenreIndex:
    """The process-wide partition of one user's analysed tracks."""
    from recommender import conf

    key = (conf.library_index_dir(), conf.exact_below(), owner_id)
    with _indexes_lock:
        if key in _libraries:
            _libraries.move_to_end(key)
        else:
            _libraries[key] = GenreIndex(key[0] / str(owner_id), exact_below=key[1])
            while len(_libraries) > LIBRARIES_OPEN:
                _libraries.popitem(last=False)
        return _libraries[key]
