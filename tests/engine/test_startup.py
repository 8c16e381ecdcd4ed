"""A classify run imports only what it needs: not librosa, scipy or numba (over a second of
start-up before the mel filterbank was computed without librosa's filters), nor torch (about
2 s on its own: the CNN and the heads run in numpy, torch only trains heads)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.audiofiles import make_audio_file
from tests.conftest import MODEL_DIR, REPO

# Heavy modules a classify run has no use for.
UNNEEDED = ("librosa", "scipy", "numba", "django", "torch")


def test_classify_imports_no_heavy_optional_module(tmp_path):
    song = make_audio_file(tmp_path, "mp3", seconds=4.0, name="song")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(GENREWEB_MODEL_DIR=str(MODEL_DIR), GENREWEB_NOVELTY_CHECK="false")
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "classifier.engine", "classify", "--json", song],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in run.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert '"error": null' in run.stdout
    assert not {m for m in imported if m.split(".")[0] in UNNEEDED}
