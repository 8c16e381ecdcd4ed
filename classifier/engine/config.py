"""The one audio configuration, shared by training, inference and the parity tests.

The numbers are those the musicnn MSD model was trained with; changing any of them
silently invalidates the pretrained weights.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = 16_000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    patch_frames: int = 187  # 187 frames x 256 hop / 16 kHz ~ 3 s

    @property
    def patch_seconds(self) -> float:
        return self.patch_frames * self.hop_length / self.sample_rate


AUDIO = AudioConfig()

# A long track costs no more than a short one: at most this many chunks, spread evenly.
DEFAULT_CHUNK_BUDGET = 16
# Chunks are analysed this many at a time: big enough to keep both cores busy,
# small enough that a one-hour --full run stays within a few hundred MB.
INFERENCE_BATCH = 64
# Below this confidence the verdict says "uncertain" instead of guessing.
DEFAULT_MIN_CONFIDENCE = 0.35

# How the bundled head is trained (defaulthead.py), here so that the command line's defaults
# need no training module. The features were chosen by cross-validation over penultimate,
# taggram, both, the pooled features and all four (the model card lists what each scored):
# the embedding and the MSD tag scores together.
DEFAULT_FEATURE = "penultimate+taggram"
L2_GRID = (0.03, 0.1, 0.3)  # the L2 strengths nested cross-validation chooses from
CALIBRATION = "platt"


@dataclass(frozen=True)
class TagChoice:
    """What of a verdict goes into a file's genre tag.

    Top-level genres only by default: a player's genre list is short, and a style is the
    less certain claim; `styles` writes each genre followed by its styles ("Electronic; House").
    """

    styles: bool = False
    max_count: int = 3  # values written, styles included
    min_confidence: float | None = None  # None: the verdict's own threshold

    def __post_init__(self) -> None:
        if self.max_count < 1:
            raise ValueError(f"a tag holds at least one genre, not {self.max_count}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(
                f"the tag threshold must be between 0 and 1, not {self.min_confidence}"
            )


# File name endings walked into by `classify DIR`, dataset imports and library folder scans
# (what FFmpeg decodes that music comes in).
AUDIO_SUFFIXES = frozenset(
    {
        ".mp3",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".m4a",
        ".mp4",
        ".aac",
        ".wav",
        ".aif",
        ".aiff",
        ".aifc",
        ".wma",
        ".ape",
        ".wv",
        ".mka",
        ".webm",
        ".mp2",
        ".ac3",
        ".amr",
        ".caf",
        ".au",
    }
)
