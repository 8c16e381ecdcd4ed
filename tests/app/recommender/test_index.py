"""recommender.index: exact and HNSW search, persistence, and several processes at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from recommender.index import DIM, CatalogIndex, GenreIndex, normalised


def clustered(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    """Unit vectors around 30 centres in a 12-d latent space: neighbours that mean something."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(100).standard_normal((12, dim))
    centres = 2 * np.random.default_rng(101).standard_normal((30, 12))
    latent = centres[rng.integers(0, 30, n)] + rng.standard_normal((n, 12))
    return normalised(latent @ mix + 0.5 * rng.standard_normal((n, dim)))


def exact(data: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return np.argsort(-(data @ normalised(query)[0]))[:k].tolist()


def test_small_partition_is_searched_exactly(tmp_path):
    data = clustered(300, seed=1)
    index = GenreIndex(tmp_path / "jazz", exact_below=1000)
    index.add(range(1000, 1300), data)
    query = clustered(1, seed=2)[0]
    hits = index.search(query, 10)
    assert not index.uses_ann
    assert [track for track, _ in hits] == [1000 + i for i in exact(data, query, 10)]
    expected = np.sort(data @ query)[::-1][:10]
    assert np.allclose([score for _, score in hits], expected, atol=1e-5)
    assert not (tmp_path / "jazz" / "ivf.faiss").exists()


def test_large_partition_goes_through_ivf_with_high_recall(tmp_path):
    data = clustered(3000, seed=3)
    index = GenreIndex(tmp_path / "rock", exact_below=500)
    index.add(range(3000), data)
    assert index.uses_ann and (tmp_path / "rock" / "ivf.faiss").exists()
    queries = clustered(100, seed=4)
    found = sum(len({t for t, _ in index.search(q, 10)} & set(exact(data, q, 10))) for q in queries)
    assert found / 1000 >= 0.95


def test_a_restart_reads_everything_back(tmp_path):
    data = clustered(1200, seed=5)
    GenreIndex(tmp_path / "pop", exact_below=500).add(range(1200), data)
    reopened = GenreIndex(tmp_path / "pop", exact_below=500)
    query = data[77]
    assert reopened.search(query, 1)[0][0] == 77
    assert len(reopened) == 1200 and reopened.uses_ann


def test_a_reader_sees_rows_added_by_another_writer(tmp_path):
    data = clustered(700, seed=6)
    writer = GenreIndex(tmp_path / "blues", exact_below=500, snapshot_every=1000)
    reader = GenreIndex(tmp_path / "blues", exact_below=500, snapshot_every=1000)
    writer.add(range(600), data[:600])
    assert reader.uses_ann is False and len(reader) == 600
    # Rows past the IVF snapshot are searched exactly and merged with the IVF's hits.
    writer.add(range(600, 700), data[600:])
    assert len(reader) == 700
    assert reader._ann.ntotal == 600
    for row in (5, 650, 699):
        assert reader.search(data[row], 1)[0][0] == row


def test_a_re_added_track_appears_once_with_its_latest_vector(tmp_path):
    data = clustered(50, seed=7)
    index = GenreIndex(tmp_path / "soul", exact_below=1000)
    index.add(range(50), data)
    index.add([3], data[40][None, :])  # track 3 re-analysed: now it sounds like row 40
    hits = index.search(data[40], 3)
    assert [t for t, _ in hits].count(3) == 1
    assert {t for t, _ in hits[:2]} == {3, 40}
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(t != 3 for t, _ in index.search(data[3], 50)[:1])


def test_a_half_written_row_is_ignored_then_dropped(tmp_path):
    data = clustered(20, seed=8)
    folder = tmp_path / "metal"
    index = GenreIndex(folder, exact_below=1000)
    index.add(range(20), data)
    with open(folder / "vectors.f32", "ab") as handle:  # a writer died mid-row
        handle.write(b"\x00" * 300)
    assert len(GenreIndex(folder)) == 20
    index.add([20], data[:1])
    assert (folder / "vectors.f32").stat().st_size == 21 * DIM * 4
    assert GenreIndex(folder).search(data[0], 2)[0][0] in (0, 20)
    assert GenreIndex(folder).ids().tolist() == [*range(20), 20]


def _add_rows(folder: str, start: int, count: int) -> None:
    data = clustered(400, seed=9)
    index = GenreIndex(Path(folder), exact_below=10_000)
    for row in range(start, start + count):
        index.add([row], data[row][None, :])


def test_two_processes_add_at_once_without_mixing_rows(tmp_path):
    folder = tmp_path / "disco"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_add_rows, args=(str(folder), s, 200)) for s in (0, 200)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    index = GenreIndex(folder, exact_below=10_000)
    assert sorted(index.ids().tolist()) == list(range(400))
    data = clustered(400, seed=9)
    for row in (0, 199, 200, 399):
        track, score = index.search(data[row], 1)[0]
        assert track == row and score == pytest.approx(1.0, abs=1e-5)


def test_catalog_partitions_by_genre_and_rebuilds(tmp_path):
    data = clustered(40, seed=10)
    catalog = CatalogIndex(tmp_path, exact_below=1000)
    for row in range(40):
        catalog.add("jazz" if row < 20 else "hip-hop", row, data[row])
    assert catalog.genres() == ["hip-hop", "jazz"]
    assert {t for t, _ in catalog.search("jazz", data[30], 40)} == set(range(20))
    assert catalog.search("classical", data[0], 5) == []

    reader = CatalogIndex(tmp_path, exact_below=1000)
    assert len(reader.search("jazz", data[0], 40)) == 20
    counts = catalog.rebuild([("jazz", 100 + r, data[r].tolist()) for r in range(5)])
    assert counts == {"jazz": 5, "hip-hop": 0}
    # The reader notices the new generation and drops the old rows.
    assert {t for t, _ in reader.search("jazz", data[0], 40)} == set(range(100, 105))
    assert reader.search("hip-hop", data[30], 5) == []


def test_the_ivf_is_retrained_when_the_partition_has_grown_fourfold(tmp_path):
    data = clustered(2000, seed=11)
    index = GenreIndex(tmp_path / "reggae", exact_below=100, snapshot_every=50)
    index.add(range(100), data[:100])
    first = index._ann.nlist
    index.add(range(100, 300), data[100:300])  # three times: same cells, more rows
    assert index._ann.nlist == first and index._ann.ntotal == 300
    index.add(range(300, 2000), data[300:])
    assert index._ann.nlist >= 2 * first and index._ann.ntotal == 2000
    assert index.search(data[1999], 1)[0][0] == 1999
