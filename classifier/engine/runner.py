"""From an audio file to an analysis: chunks, the CNN, the genre head, averaged.

`analyse(path, config)` is what the command line, the Celery tasks and the recommender call.
The engine (CNN + head) loads once per process and configuration, and is reused. Its
configuration comes in as an EngineConfig: the engine reads no settings of its own.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from classifier.engine import novelty
from classifier.engine.analysis import Analysis, Chunk, GenreScore, StyleScore
from classifier.engine.config import DEFAULT_CHUNK_BUDGET, DEFAULT_MIN_CONFIDENCE, INFERENCE_BATCH
from classifier.engine.errors import ModelError
from classifier.engine.evidence import TrackEvidence, read_evidence
from classifier.engine.features import Chunks, opened_chunks
from classifier.engine.head import GenreHead, HeadInfo, load_head
from classifier.engine.inference import SplitInference
from classifier.engine.labels import MSD_TAGS, STYLE_TAGS
from classifier.engine.musicnn import MusiCNN, MusiCNNOutput, concatenate_outputs
from classifier.engine.registry import DEFAULT_HEAD, NOVELTY_MODEL, default_model_dir
from classifier.engine.weights import load_musicnn, model_version

Progress = Callable[[str, float], None]
STYLE_COUNT = 5
_STYLE_INDEX = np.array([MSD_TAGS.index(tag) for tag in STYLE_TAGS])


NOVEL_WARNING = (
    "it does not sound like the music the model learned from (speech, noise or test tones?), "
    "so no genre is claimed"
)


@dataclass(frozen=True)
class EngineConfig:
    """What the engine needs to know from its caller."""

    model_dir: Path = field(default_factory=default_model_dir)  # the converted weights' cache
    head_path: Path = DEFAULT_HEAD  # the genre head
    # Non-music comes out uncertain (novelty.py); None, or a file that is absent: no check.
    novelty_path: Path | None = NOVELTY_MODEL
    threads: int = 0  # CPU threads the CNN runs on; 0: one per core the process may use

    def with_head(self, head_path: Path | None) -> EngineConfig:
        return self if head_path is None else replace(self, head_path=Path(head_path))


@dataclass
class ChunkOutputs:
    """The CNN's outputs for a track's chunks, row per chunk."""

    chunks: Chunks
    taggram: np.ndarray  # (k, 50) sigmoid scores of the MSD tags
    penultimate: np.ndarray  # (k, 200)
    features: np.ndarray  # (k, d) what the head reads
    evidence: TrackEvidence | None = None  # the file's tags, where they were asked for


def head_features(
    taggram: np.ndarray,
    penultimate: np.ndarray,
    max_pool: np.ndarray,
    mean_pool: np.ndarray,
    feature: str,
) -> np.ndarray:
    """The per-chunk input of the genre head named by `feature` (a head's HeadInfo.feature)."""
    parts = {
        "penultimate": penultimate,
        "taggram": taggram,
        "max_pool": max_pool,
        "mean_pool": mean_pool,
    }
    try:
        return np.concatenate([parts[name] for name in feature.split("+")], axis=1)
    except KeyError:
        raise ValueError(f"unknown head feature {feature!r}") from None


class Engine:
    """The musicnn CNN and a genre head, loaded once."""

    head: GenreHead | None

    def __init__(self, config: EngineConfig | None = None, *, with_head: bool = True) -> None:
        self.config = config or EngineConfig()
        self.cnn = shared_cnn(self.config.model_dir)
        self.infer = shared_inference(self.config.model_dir, self.config.threads)
        self.head_path = Path(self.config.head_path)
        self.novelty: novelty.NoveltyModel | None = None
        if with_head:
            self.head, self.info, head_version = load_head(self.head_path)
            self.model = model_version(head_version)
            path = self.config.novelty_path
            if path is not None and Path(path).is_file():
                self.novelty = novelty.load(Path(path))
        else:
            self.head, self.info = None, HeadInfo(genres=[])
            self.model = model_version(None)

    @classmethod
    def cnn_only(cls, config: EngineConfig | None = None) -> Engine:
        """An engine without a head, for computing training features."""
        return cls(config, with_head=False)

    def run_chunks(
        self, chunks: Chunks, feature: str, on_progress: Progress | None = None
    ) -> ChunkOutputs:
        outputs: list[MusiCNNOutput] = []
        total = len(chunks.patches)
        for start in range(0, total, INFERENCE_BATCH):
            batch = chunks.patches[start : start + INFERENCE_BATCH]
            outputs.append(self.infer(batch))
            if on_progress:
                on_progress("analysing", min(1.0, (start + len(batch)) / total))
        taggram, penultimate, max_pool, mean_pool = concatenate_outputs(outputs)
        return ChunkOutputs(
            chunks,
            taggram,
            penultimate,
            head_features(taggram, penultimate, max_pool, mean_pool, feature),
        )

    def embed(
        self,
        path: str | Path,
        *,
        full: bool = True,
        feature: str = "penultimate",
        on_progress: Progress | None = None,
        evidence: bool = False,
    ) -> ChunkOutputs:
        """The CNN's outputs on the track's chunks; with `evidence`, also what its tags say,
        read while the file is open for its audio."""
        budget = None if full else DEFAULT_CHUNK_BUDGET
        decoding = (lambda f: on_progress("decoding", f)) if on_progress else None
        with opened_chunks(path, budget=budget, on_progress=decoding) as (chunks, audio):
            found = read_evidence(audio.path, handle=audio.handle) if evidence else None
        outputs = self.run_chunks(chunks, feature, on_progress)
        outputs.evidence = found
        return outputs

    def analyse(
        self,
        path: str | Path,
        *,
        full: bool = False,
        top_k: int = 3,
        min_confidence: float | None = None,
        on_progress: Progress | None = None,
    ) -> Analysis:
        outputs = self.embed(
            path, full=full, feature=self.info.feature, on_progress=on_progress, evidence=True
        )
        chunk_probs = self.probabilities(outputs.features)
        return self.verdict(str(path), outputs, chunk_probs, top_k, min_confidence)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """The head's genre probabilities for each row of chunk features."""
        if self.head is None:
            raise ModelError("this engine has no genre head: it only computes features")
        return self.head.probabilities(features)

    def verdict(
        self,
        path: str,
        outputs: ChunkOutputs,
        chunk_probs: np.ndarray,
        top_k: int,
        min_confidence: float | None,
    ) -> Analysis:
        genres = self.info.genres
        mean = chunk_probs.mean(0)
        parents = self.info.parents  # a style ranks after its parent: never above it
        order = np.argsort(-mean, kind="stable")[:top_k]
        ranked = [GenreScore(genres[i], float(mean[i]), parents.get(genres[i])) for i in order]
        threshold = DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence
        novel = self.novelty.score(outputs.penultimate) if self.novelty else None
        warnings = list(outputs.chunks.warnings)
        if novel is not None and novel > 1.0:
            warnings.append(NOVEL_WARNING)
        return Analysis(
            path=path,
            genres=ranked,
            probabilities={g: float(p) for g, p in zip(genres, mean, strict=True)},
            styles=styles(outputs.taggram),
            chunks=len(chunk_probs),
            duration=outputs.chunks.duration,
            model=self.model,
            uncertain=bool(ranked[0].confidence < threshold) or NOVEL_WARNING in warnings,
            min_confidence=threshold,
            tag_spelling=dict(self.info.tag_spelling),
            timeline=[
                Chunk(float(start), {g: float(p) for g, p in zip(genres, probs, strict=True)})
                for start, probs in zip(outputs.chunks.starts, chunk_probs, strict=True)
            ],
            embedding=outputs.penultimate.mean(0).astype(np.float32),
            warnings=warnings,
            parents=dict(parents),
            novelty=novel,
            evidence=outputs.evidence,
        )


def styles(taggram: np.ndarray, count: int = STYLE_COUNT) -> list[StyleScore]:
    """The MSD model's genre-like tags, averaged over chunks, best first."""
    scores = taggram.mean(0)[_STYLE_INDEX]
    order = np.argsort(-scores)[:count]
    return [StyleScore(STYLE_TAGS[i], float(scores[i])) for i in order]


@functools.cache
def shared_cnn(model_dir: Path) -> MusiCNN:
    """The one CNN of the process: every head reads the same frozen features."""
    return load_musicnn(cache_dir=model_dir)


@functools.cache
def shared_inference(model_dir: Path, threads: int = 0) -> SplitInference:
    """The CNN's batches split over `threads` workers (0: one per core)."""
    return SplitInference(shared_cnn(model_dir), threads)


# A promotion switches heads at the next track; the previous engine is kept a little while
# for tracks already under way, older ones are dropped (they share the CNN, a head is small).
_KEEP_ENGINES = 2
_engines: OrderedDict[EngineConfig, Engine] = OrderedDict()
_lock = threading.Lock()


def get_engine(config: EngineConfig | None = None) -> Engine:
    """The process-wide engine for a configuration (the bundled head when None)."""
    key = config or EngineConfig()
    with _lock:
        if key not in _engines:
            _engines[key] = Engine(key)
        _engines.move_to_end(key)
        while len(_engines) > _KEEP_ENGINES:
            _engines.popitem(last=False)
        return _engines[key]


def analyse(
    path: str | Path,
    config: EngineConfig | None = None,
    *,
    full: bool = False,
    top_k: int = 3,
    min_confidence: float | None = None,
    on_progress: Progress | None = None,
) -> Analysis:
    """The analysis of one file (see Engine.analyse)."""
    return get_engine(config).analyse(
        path, full=full, top_k=top_k, min_confidence=min_confidence, on_progress=on_progress
    )


__all__ = ["Engine", "EngineConfig", "GenreHead", "analyse", "get_engine", "head_features"]
