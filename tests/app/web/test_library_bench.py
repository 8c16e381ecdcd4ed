"""The library benchmark (bench/library.py) runs, at a size CI can afford."""

from __future__ import annotations

import re

from bench import library


def test_the_library_benchmark_measures_and_ends_with_its_figures(db, tmp_path, capsys):
    figures = library.measure(tmp_path, files=15, rows=60, requests=1, scan_in_child=False)
    out = capsys.readouterr().out
    print(out)
    lines = out.strip().splitlines()
    assert re.fullmatch(r"files_per_s=[\d.]+ rescan_s=[\d.]+ list_p95_ms=[\d.]+", lines[-1])
    assert figures["files_per_s"] > 0 and figures["list_p95_ms"] > 0
    scan, rescan = (next(x for x in lines if x.startswith(s)) for s in ("first scan", "rescan"))
    assert "'new': 15" in scan and "'unchanged': 15" in rescan
