"""The engine's own command line, `python -m classifier.engine`, as a user runs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from classifier.engine.files import sha256_of
from classifier.engine.head import read_head_info
from classifier.engine.registry import DEFAULT_HEAD
from classifier.engine.weights import CACHE_FILE
from tests.audiofiles import make_audio_file, tone, write_audio
from tests.conftest import MODEL_DIR, REPO


def run(
    *args: str | Path, env: dict[str, str] | None = None, module: bool = True
) -> subprocess.CompletedProcess[str]:
    command = ["-m", "classifier.engine"] if module else ["manage.py"]
    return subprocess.run(
        [sys.executable, *command, *map(str, args)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


def options_of(help_text: str) -> set[str]:
    return set(re.findall(r"(--[a-z0-9-]+)", help_text)) - {"--help"}


def test_manage_py_wrappers_take_exactly_the_engines_options(tmp_path):
    env = {"GENREWEB_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db"}
    for engine_name, django_name in (("classify", "classify"), ("train-head", "train_head")):
        engine = run(engine_name, "--help")
        wrapper = run(django_name, "--help", env=env, module=False)
        assert engine.returncode == wrapper.returncode == 0, engine.stderr + wrapper.stderr
        # Django adds its own options (--settings, --verbosity, ...) to every command.
        assert options_of(engine.stdout) <= options_of(wrapper.stdout)
        assert options_of(engine.stdout), engine.stdout


def test_train_head_writes_to_the_models_folder_never_the_bundled_head(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    cached = MODEL_DIR / CACHE_FILE
    if cached.exists():  # skip converting the checkpoint again
        shutil.copy(cached, models / CACHE_FILE)
    data = tmp_path / "labelled"
    for genre, freqs in (("drone", (110.0,)), ("chirp", (1760.0, 2500.0))):
        for n in range(3):
            folder = data / genre
            folder.mkdir(parents=True, exist_ok=True)
            write_audio(
                folder / f"{genre}.{n:05d}.wav",
                tone(3.5, 16_000, freqs=freqs, seed=n),
                16_000,
                "wav",
            )
    bundled_before = sha256_of(DEFAULT_HEAD)

    result = run(
        "train-head",
        data,
        "--folds",
        "3",
        "--epochs",
        "30",
        env={"GENREWEB_MODEL_DIR": str(models)},
    )

    assert result.returncode == 0, result.stderr
    written = models / "genre_head.safetensors"
    assert f"wrote {written}" in result.stdout
    assert "cross-validated accuracy (3 folds)" in result.stdout
    assert read_head_info(written).genres == ["chirp", "drone"]
    assert sha256_of(DEFAULT_HEAD) == bundled_before  # the committed head is untouched


def test_train_head_names_what_is_wrong_with_the_folder(tmp_path):
    (tmp_path / "only").mkdir()
    make_audio_file(tmp_path / "only", "wav", seconds=3.5, name="one")
    result = run("train-head", tmp_path, env={"GENREWEB_MODEL_DIR": str(tmp_path / "m")})
    assert result.returncode == 2
    assert "needs at least two genre subfolders" in result.stderr
    assert "Traceback" not in result.stderr
