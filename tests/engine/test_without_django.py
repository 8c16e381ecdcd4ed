"""The engine stands alone: decoding, analysis, tag writing and its command line all run in
processes where Django cannot even be imported (and no DJANGO_SETTINGS_MODULE is set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.audiofiles import make_audio_file
from tests.conftest import MODEL_DIR, REPO

# Decode, analyse and tag one file with the engine's own API; report what Django left behind.
SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    from classifier.engine.audio import decode
    from classifier.engine.filetags import read_tags, write_genres
    from classifier.engine.runner import EngineConfig, analyse

    path, model_dir = Path(sys.argv[1]), Path(sys.argv[2])
    samples = decode(path)
    config = EngineConfig(model_dir=model_dir, novelty_path=None)
    analysis = analyse(path, config, min_confidence=0.0)
    tags = analysis.tag_values()
    result = write_genres(path, tags, policy="replace")
    print(json.dumps({"samples": int(samples.size), "analysis": analysis.to_json(),
                      "tags": tags, "written": list(result.after),
                      "read": list(read_tags(path).genres),
                      "django": sorted(m for m in sys.modules if m.split(".")[0] == "django")}))
""")
# First on PYTHONPATH: a `django` that records who imported it, then refuses.
BLOCKER = textwrap.dedent("""
    import os, traceback
    with open(os.environ["GENREWEB_DJANGO_IMPORTS"], "a") as log:
        log.write("".join(traceback.format_stack()) + "\\n")
    raise ImportError("django is blocked here: the engine must run without it")
""")


@pytest.fixture
def no_django(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose `import django` fails, and the file each attempt is logged in."""
    blocked = tmp_path / "blocked"
    (blocked / "django").mkdir(parents=True)
    (blocked / "django" / "__init__.py").write_text(BLOCKER)
    imports = tmp_path / "django-imports.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "GENREWEB_HEAD_PATH", "PYTHONPATH")
    }
    env.update(
        PYTHONPATH=str(blocked),
        GENREWEB_DJANGO_IMPORTS=str(imports),
        GENREWEB_MODEL_DIR=str(MODEL_DIR),
    )
    return env, imports


def python(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_engine_runs_where_django_cannot_be_imported(no_django, tmp_path):
    env, imports = no_django
    blocked = python(env, "-c", "import django")
    assert blocked.returncode != 0 and "django is blocked here" in blocked.stderr
    imports.unlink()  # that attempt was ours
    song = make_audio_file(tmp_path, "wav", seconds=4.0, name="song")

    done = python(env, "-c", SCRIPT, song, MODEL_DIR)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    analysis = shown["analysis"]
    assert shown["samples"] > 0 and analysis["chunks"] == 1
    assert analysis["duration"] == pytest.approx(4.0, abs=0.1)
    assert analysis["genres"] and analysis["error"] is None
    assert analysis["model"].startswith("musicnn-msd-")
    top = analysis["genres"][0]["name"]
    assert shown["tags"] and shown["written"] == shown["read"] == shown["tags"]

    command = python(env, "-m", "classifier.engine", "classify", "--json", song)
    assert command.returncode == 0, command.stderr
    [line] = command.stdout.splitlines()  # one JSON object, nothing else on stdout
    classified = json.loads(line)
    assert Path(classified["path"]) == song and classified["error"] is None
    assert classified["chunks"] == 1 and classified["model"] == analysis["model"]
    assert classified["genres"][0]["name"] == top

    assert shown["django"] == []
    assert not imports.exists(), f"django was imported:\n{imports.read_text()}"
