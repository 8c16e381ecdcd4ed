"""A second view for the default head: the musicnn wheel's MTT_musicnn model beside MSD's.

Issue 10 asks whether the wheel's MagnaTagATune model (same architecture, 50 MTT tags) earns
its place beside the MSD CNN. This script:

- loads MTT_musicnn with the engine's own reader (checkpoint.read_checkpoint,
  musicnn.state_dict_from_tf, musicnn_from_state_dict), its files pinned by sha256 in the
  registry, and checks that it is MSD's architecture;
- computes its per-chunk outputs for every shared clip, on the very chunks the MSD features
  are cached for (features.extract_chunks of the whole clip; the MSD outputs come from
  featurecache, as train-default's do); both caches live outside the repository;
- judges the head on the shipped MSD features and on MSD + MTT features with train-default's
  own protocol (defaulthead.nested_logits: artist-disjoint folds, the L2 strength chosen by
  inner folds, Platt calibration cross-fitted, defaulthead's scoring), over several cuts into
  folds (--cuts), so that a difference is not one cut's luck;
- times the CNN per 3-second chunk for both models and the default path (16 chunks of a
  4-minute track, analyse() warm) with and without a second CNN;
- applies the decision rule: ship only if MSD + MTT raises both mer4q and GTZAN by >= 0.03 on
  average over the cuts, emotify stays >= 0.90 and ECE <= 0.05.

    python bench/second_view.py --shared ../shared

The first run computes the MTT outputs (about 2 minutes here; the MSD ones too where
train-default has not cached them) and fits the heads, one torch thread each (--cv-threads):
4, 5, 6, 8 and 10 folds for four sets took about 40 minutes of one core on a 2-core machine.
Each (set, cut)'s figures are kept beside the MTT outputs, so a rerun only prints them (and
times the CNNs again). The last line: `msd_only=<gtzan>/<emotify>/<mer4q>/<ece best genre>
msd_plus_mtt=... (<set>) rtf_default=<x> rtf_with_mtt=<x> decision=ship|do_not_ship` (means
over the cuts; the MSD + MTT set named is the one that qualifies, else the one whose smaller
gain is the largest).
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from classifier.engine import registry  # noqa: E402
from classifier.engine.checkpoint import read_checkpoint  # noqa: E402
from classifier.engine.config import (  # noqa: E402  # noqa: E402
    CALIBRATION,
    DEFAULT_CHUNK_BUDGET,
    DEFAULT_FEATURE,
    INFERENCE_BATCH,
    L2_GRID,
)
from classifier.engine.datasets import LabelledClip, all_sources  # noqa: E402
from classifier.engine.defaulthead import (  # noqa: E402
    POOLED,
    clip_features,
    grid_configs,
    nested_logits,
)
from classifier.engine.errors import ModelError  # noqa: E402
from classifier.engine.featurecache import (  # noqa: E402
    ClipOutputs,
    all_outputs,
    cached_path,
    default_cache_dir,
    read_cached,
    write_cached,
)
from classifier.engine.features import extract_chunks  # noqa: E402
from classifier.engine.files import sha256_of  # noqa: E402
from classifier.engine.inference import SplitInference  # noqa: E402
from classifier.engine.multilabel import (  # noqa: E402
    FitConfig,
    LabelSpace,
    artist_folds,
    cross_fitted_probabilities,
    figures,
    label_space,
    targets,
)
from classifier.engine.musicnn import (  # noqa: E402
    MusiCNN,
    concatenate_outputs,
    state_dict_from_tf,
)
from classifier.engine.runner import Engine, EngineConfig  # noqa: E402
from classifier.engine.taxonomy import Taxonomy, load_taxonomy  # noqa: E402
from classifier.engine.weights import MUSICNN_VERSION  # noqa: E402

MTT_VERSION = "musicnn-mtt-" + registry.MTT_SHA256[".data-00000-of-00001"][:8]
# Feature sets judged: MSD's parts before the bar, MTT's after it.
FEATURE_SETS = {
    "msd_only": (DEFAULT_FEATURE, ""),
    "msd+mtt_taggram": (DEFAULT_FEATURE, "taggram"),
    "msd+mtt_penultimate+taggram": (DEFAULT_FEATURE, "penultimate+taggram"),
    "mtt_only": ("", "penultimate+taggram"),  # for reference: not a candidate
}
HEADLINE = (
    ("gtzan_accuracy", "GTZAN acc."),
    ("emotify_balanced_accuracy", "emotify bal. acc."),
    ("mer4q_balanced_accuracy", "mer4q bal. acc."),
    ("top_label_ece", "ECE best genre"),
)
# The decision rule of issue 10.
MIN_GAIN = 0.03
MIN_EMOTIFY = 0.90
MAX_ECE = 0.05


# ---------------------------------------------------------------- the MTT model


def mtt_checkpoint_dir() -> Path:
    """The wheel's MTT_musicnn folder, beside the MSD one."""
    return registry.checkpoint_dir().parent / registry.MTT_CHECKPOINT_DIR


def load_mtt() -> MusiCNN:
    """MTT_musicnn in eval mode, its checkpoint verified against the pinned sha256."""
    folder = mtt_checkpoint_dir()
    for suffix, expected in registry.MTT_SHA256.items():
        actual = sha256_of(folder / suffix)
        if actual != expected:
            raise ModelError(f"{folder / suffix}: sha256 {actual}, expected {expected}")
    variables = read_checkpoint(folder)
    size = sum(v.size for v in variables.values())
    msd_size = sum(v.size for v in read_checkpoint(registry.checkpoint_dir()).values())
    if size != msd_size:
        raise ModelError(f"MTT_musicnn holds {size} parameters, MSD {msd_size}")
    model = MusiCNN(state_dict_from_tf(variables))
    tags = model.output.weight.shape[-1]
    print(f"MTT_musicnn: {size:,} variables (MSD's: {msd_size:,}), {tags} tags, {MTT_VERSION}")
    return model


def mtt_outputs(
    infer: SplitInference, path: Path, cache_dir: Path, chunks_expected: int
) -> ClipOutputs:
    """The clip's MTT outputs on the chunks MSD's were computed on (cached)."""
    cached = cached_path(cache_dir, path, MTT_VERSION)
    outputs = read_cached(cached)
    if outputs is None:
        patches = extract_chunks(path, budget=None).patches
        parts = [
            infer(patches[i : i + INFERENCE_BATCH]) for i in range(0, len(patches), INFERENCE_BATCH)
        ]
        outputs = ClipOutputs(*(a.astype(np.float32) for a in concatenate_outputs(parts)))
        write_cached(outputs, cached)
    if len(outputs.taggram) != chunks_expected:
        raise ModelError(f"{path}: {len(outputs.taggram)} MTT chunks, {chunks_expected} MSD")
    return outputs


# ---------------------------------------------------------------- cross-validation


def feature_rows(msd: ClipOutputs, mtt: ClipOutputs, msd_parts: str, mtt_parts: str) -> np.ndarray:
    rows = [clip_features(msd, msd_parts)] if msd_parts else []
    if mtt_parts:
        rows.append(clip_features(mtt, mtt_parts))
    return np.concatenate(rows, axis=1)


def judge(
    clips: Sequence[LabelledClip],
    chunks: Sequence[np.ndarray],
    n_folds: int,
    vary: Callable[[FitConfig, LabelSpace, Taxonomy], FitConfig] = lambda c, s, t: c,
) -> tuple[dict[str, float], list[str]]:
    """train-default's headline figures for these chunk features, cut into n_folds; `vary`
    changes how each config of the L2 grid trains (bench/head_variants.py)."""
    taxonomy = load_taxonomy()
    space = label_space(clips, taxonomy)
    target = targets(clips, space)
    folds = artist_folds(clips, n_folds)
    grid = [vary(c, space, taxonomy) for c in grid_configs(L2_GRID, POOLED)]
    torch.manual_seed(0)
    logits, chosen = nested_logits(clips, chunks, target, space, folds, grid, io.StringIO())
    probs = cross_fitted_probabilities(logits, target, space, folds, CALIBRATION)
    h = figures(clips, probs, target, space).headline()
    return {name: h[name] for name, _ in HEADLINE}, chosen


# ---------------------------------------------------------------- cost


def best_of(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def cost(engine: Engine, mtt: MusiCNN, rounds: int) -> dict[str, float]:
    """Seconds per 3-s chunk of each CNN, and the default path's real-time factor on a
    4-minute FLAC with and without the second CNN over its 16 chunks."""
    # bench_engine's 4-minute tracks (imported by name: bench/tracks.py is not type-checked)
    make_tracks = importlib.import_module("bench.tracks").make_tracks
    default = Engine(EngineConfig())
    mtt_infer = SplitInference(mtt)
    with tempfile.TemporaryDirectory() as tmp:
        track = make_tracks(Path(tmp), 1)[0]
        seconds = 240.0
        default.analyse(track)  # warm
        patches = extract_chunks(track, budget=DEFAULT_CHUNK_BUDGET).patches
        n = len(patches)

        def run_msd() -> None:
            default.infer(patches)

        def run_mtt() -> None:
            mtt_infer(patches)

        run_msd()
        run_mtt()
        # Interleaved rounds, the best of each: the machine is shared. The two CNNs take turns
        # at going first (the one run second after analyse() found its weights out of cache).
        analyse_t: list[float] = []
        msd_t: list[float] = []
        mtt_t: list[float] = []
        for r in range(rounds):
            analyse_t.append(best_of(lambda: default.analyse(track), 1))
            for which in ("msd", "mtt") if r % 2 else ("mtt", "msd"):
                (msd_t if which == "msd" else mtt_t).append(
                    best_of(run_msd if which == "msd" else run_mtt, 1)
                )
    a, m, t = min(analyse_t), min(msd_t), min(mtt_t)
    return {
        "chunks": float(n),
        "msd_ms_per_chunk": 1000 * m / n,
        "mtt_ms_per_chunk": 1000 * t / n,
        "analyse_s": a,
        "analyse_with_mtt_s": a + t,
        "rtf_default": seconds / a,
        "rtf_with_mtt": seconds / (a + t),
    }


# ---------------------------------------------------------------- report


def fmt(h: dict[str, float]) -> str:
    return "/".join(f"{h[name]:.3f}" for name, _ in HEADLINE)


def decide(
    means: dict[str, dict[str, float]], base: str = "msd_only", prefix: str = "msd+mtt"
) -> tuple[str, str]:
    """(decision, the candidate it rests on): the rule of issue 10, for the sets named with
    `prefix` against `base`."""
    reference = means[base]

    def gain(h: dict[str, float]) -> tuple[float, float]:
        return (
            h["mer4q_balanced_accuracy"] - reference["mer4q_balanced_accuracy"],
            h["gtzan_accuracy"] - reference["gtzan_accuracy"],
        )

    others = [name for name in means if name.startswith(prefix) and name != base]
    for name in others:
        h = means[name]
        if (
            min(gain(h)) >= MIN_GAIN
            and h["emotify_balanced_accuracy"] >= MIN_EMOTIFY
            and h["top_label_ece"] <= MAX_ECE
        ):
            return "ship", name
    # None qualifies: the summary names the set whose smaller gain is the largest.
    return "do_not_ship", max(others, key=lambda name: min(gain(means[name])))


Outputs = dict[Path, ClipOutputs]


def all_views(
    shared: Path, cache: Path, mtt_cache: Path, mtt: MusiCNN
) -> tuple[list[LabelledClip], Engine, Outputs, Outputs]:
    """The clips, the MSD engine, and every clip's MSD and MTT outputs (cached)."""
    started = time.monotonic()
    clips = all_sources(shared, load_taxonomy())
    engine = Engine.cnn_only(EngineConfig())
    msd = all_outputs(engine, [c.path for c in clips], cache)
    clips = [c for c in clips if c.path in msd]
    infer = SplitInference(mtt)
    mtt_out = {}
    for n, clip in enumerate(clips, 1):
        mtt_out[clip.path] = mtt_outputs(infer, clip.path, mtt_cache, len(msd[clip.path].taggram))
        if n % 100 == 0 or n == len(clips):
            print(f"MTT outputs {n}/{len(clips)} ({time.monotonic() - started:.0f} s)", flush=True)
    chunk_total = sum(len(msd[c.path].taggram) for c in clips)
    print(f"{len(clips)} clips, {chunk_total} chunks, the same chunks in both views")
    return clips, engine, msd, mtt_out


Results = dict[str, dict[int, dict[str, float]]]


def cross_validate(
    clips: list[LabelledClip],
    msd: Outputs,
    mtt_out: Outputs,
    sets: Sequence[str],
    cuts: Sequence[int],
    kept_dir: Path,
) -> Results:
    """Every set's figures under every cut; each (set, cut) is kept in kept_dir (a rerun
    prints it again)."""
    started = time.monotonic()
    results: Results = {}
    for name in sets:
        msd_parts, mtt_parts = FEATURE_SETS[name]
        chunks = [feature_rows(msd[c.path], mtt_out[c.path], msd_parts, mtt_parts) for c in clips]
        results[name] = {}
        for n_folds in cuts:
            kept = kept_dir / f"cv-{name}-{n_folds}-{MUSICNN_VERSION}.json"
            if kept.is_file():
                h, chosen = json.loads(kept.read_text())
            else:
                h, chosen = judge(clips, chunks, n_folds)
                kept.write_text(json.dumps([h, chosen]))
            results[name][n_folds] = h
            print(
                f"{name} ({chunks[0].shape[1]} dims), {n_folds} folds: {fmt(h)} "
                f"(outer folds chose: {', '.join(chosen)}; {time.monotonic() - started:.0f} s)",
                flush=True,
            )
    return results


def table(results: Results, cuts: Sequence[int]) -> dict[str, dict[str, float]]:
    """Prints the markdown table; returns each set's means over the cuts."""
    means = {
        name: {key: float(np.mean([by[n][key] for n in cuts])) for key, _ in HEADLINE}
        for name, by in results.items()
    }
    print()
    print("| features | folds | " + " | ".join(label for _, label in HEADLINE) + " |")
    print("|---|---|" + "---|" * len(HEADLINE))
    for name, by in results.items():
        for n_folds in cuts:
            row = " | ".join(f"{by[n_folds][key]:.3f}" for key, _ in HEADLINE)
            print(f"| {name} | {n_folds} | {row} |")
        row = " | ".join(f"**{means[name][key]:.3f}**" for key, _ in HEADLINE)
        print(f"| {name} | mean | {row} |")
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--cache", type=Path, default=default_cache_dir(), help="MSD outputs")
    parser.add_argument(
        "--mtt-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "genreweb-mtt-features",
        help="MTT outputs and each (set, cut)'s figures",
    )
    parser.add_argument("--cuts", default="4,5,6,8,10", help="numbers of folds, comma-separated")
    parser.add_argument("--sets", default=",".join(FEATURE_SETS), help="feature sets judged")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (0: no timing)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--cv-threads",
        type=int,
        default=1,
        help="torch threads while the heads are fitted (one: 2x faster on a busy 2-core machine)",
    )
    args = parser.parse_args()
    cuts = [int(c) for c in args.cuts.split(",") if c]
    sets = [s for s in args.sets.split(",") if s]
    started = time.monotonic()

    mtt = load_mtt()
    clips, engine, msd, mtt_out = all_views(args.shared, args.cache, args.mtt_cache, mtt)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.cv_threads)
    results = cross_validate(clips, msd, mtt_out, sets, cuts, args.mtt_cache)
    torch.set_num_threads(threads)
    means = table(results, cuts)

    timing: dict[str, float] = {}
    if args.rounds:
        timing = cost(engine, mtt, args.rounds)
        print()
        print(
            f"CNN per 3-s chunk: MSD {timing['msd_ms_per_chunk']:.1f} ms, MTT "
            f"{timing['mtt_ms_per_chunk']:.1f} ms; default path (4-minute FLAC, "
            f"{timing['chunks']:.0f} chunks): {timing['analyse_s']:.3f} s "
            f"({timing['rtf_default']:.0f}x real time), with a second CNN "
            f"{timing['analyse_with_mtt_s']:.3f} s ({timing['rtf_with_mtt']:.0f}x)"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"cuts": results, "means": means, "cost": timing}, indent=1) + "\n"
        )
    judged = "msd_only" in means and any(name.startswith("msd+mtt") for name in means)
    decision, best = decide(means) if judged else ("none", "")
    print(f"took {time.monotonic() - started:.0f} s")
    summary = f"msd_only={fmt(means['msd_only'])}" if "msd_only" in means else ""
    if best:
        summary += f" msd_plus_mtt={fmt(means[best])} ({best})"
    if timing:
        summary += (
            f" rtf_default={timing['rtf_default']:.0f} rtf_with_mtt={timing['rtf_with_mtt']:.0f}"
        )
    print(f"{summary} decision={decision}")


if __name__ == "__main__":
    main()
