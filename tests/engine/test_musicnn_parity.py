"""The torch port of musicnn MSD against what the original TensorFlow model computed."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from classifier.engine.errors import ModelError
from classifier.engine.musicnn import MusiCNN, spectral_frequency_max, spectral_kernel
from classifier.engine.weights import CACHE_FILE, MUSICNN_VERSION, load_musicnn

ATOL = 1e-3
OUTPUTS = ("taggram", "penultimate", "max_pool", "mean_pool")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def model(cache_dir: Path) -> MusiCNN:
    return load_musicnn(cache_dir=cache_dir)


@pytest.fixture(scope="module")
def references(reference_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    clips = {path.stem: dict(np.load(path)) for path in sorted(reference_dir.glob("*.npz"))}
    assert clips, f"no reference .npz files in {reference_dir}"
    return clips


def genuine_rows(reference: np.ndarray) -> np.ndarray:
    """The rows of a reference penultimate that the TF model really computed for their patch.

    musicnn 0.1.0's extractor runs one patch per batch and, for every batch after the first,
    appends the first batch's stale `penultimate_` (it unpacks the new one into `backend_`).
    Where all rows equal the first, only the first is genuine.
    """
    if len(reference) > 1 and (reference == reference[0]).all():
        return reference[:1]
    return reference


def test_outputs_match_tensorflow(model, references):
    errors: dict[str, dict[str, float]] = {}
    for clip, ref in references.items():
        out = model.infer(ref["patches"])
        errors[clip] = {}
        for name in OUTPUTS:
            expected = ref[name]
            if name == "penultimate":
                expected = genuine_rows(expected)
            ours = getattr(out, name).numpy()[: len(expected)]
            assert ours.shape == expected.shape, (clip, name)
            errors[clip][name] = float(np.abs(ours - expected).max())
    print("\nmax abs error per clip:", errors)
    worst = {clip: {k: v for k, v in e.items() if v > ATOL} for clip, e in errors.items()}
    assert not any(worst.values()), f"outputs beyond atol {ATOL}: {worst}"


def test_penultimate_is_computed_per_patch(model, references):
    # The port must not copy the upstream bug: each patch gets its own embedding, and the
    # output layer on it gives that patch's TF tag scores.
    ref = references[next(iter(references))]
    out = model.infer(ref["patches"])
    assert len(out.penultimate) == len(ref["patches"]) > 1
    assert (out.penultimate[1:] - out.penultimate[0]).abs().max() > 0.1
    with torch.inference_mode():
        taggram = torch.sigmoid(model.output(out.penultimate)).numpy()
    np.testing.assert_allclose(taggram, ref["taggram"], atol=ATOL)


def test_batch_size_does_not_change_results(model, references):
    patches = np.concatenate([ref["patches"] for ref in references.values()])
    whole = model.infer(patches, batch_size=len(patches))
    small = model.infer(patches, batch_size=7)
    for name in OUTPUTS:
        np.testing.assert_allclose(
            getattr(small, name).numpy(), getattr(whole, name).numpy(), atol=1e-5
        )


def test_cache_is_written_once_and_reused(model, cache_dir, references, tmp_path):
    cached = cache_dir / CACHE_FILE
    assert cached.is_file()
    with safe_open(cached, framework="pt") as handle:
        assert handle.metadata()["model"] == MUSICNN_VERSION
    written = cached.stat().st_mtime_ns
    # A checkpoint folder that does not exist: only the cache can satisfy this load.
    again = load_musicnn(cache_dir=cache_dir, checkpoint=tmp_path / "no-such-checkpoint")
    assert cached.stat().st_mtime_ns == written
    assert not again.training
    patches = next(iter(references.values()))["patches"]
    for first, second in zip(model.infer(patches), again.infer(patches), strict=True):
        assert torch.equal(first, second)


def test_cache_of_another_version_is_converted_again(tmp_path):
    cached = tmp_path / CACHE_FILE
    save_file({"stale": torch.zeros(1)}, str(cached), metadata={"model": "musicnn-msd-00000000"})
    model = load_musicnn(cache_dir=tmp_path)
    with safe_open(cached, framework="pt") as handle:
        assert handle.metadata()["model"] == MUSICNN_VERSION
        assert "stale" not in handle.keys()  # noqa: SIM118 (safe_open is not a dict)
    assert isinstance(model, MusiCNN)
    assert not [p for p in tmp_path.iterdir() if p.name != CACHE_FILE]  # no temp file left


def test_damaged_cache_is_refused(tmp_path):
    (tmp_path / CACHE_FILE).write_bytes(os.urandom(64))
    with pytest.raises(ModelError, match="cached musicnn weights .* are damaged"):
        load_musicnn(cache_dir=tmp_path)


def test_eval_pooling_shortcut_matches_the_plain_order(model):
    # Eval pools each front-end conv before its bias, ReLU and batch norm (and runs the wide
    # timbral convs through the DFT); most of the trained batch-norm scales are negative, so
    # this only holds if those take the minimum. The yardstick is TF's order in float64.
    blocks = [*model.timbral, *model.temporal]
    assert any((block.bn.weight < 0).any() for block in blocks)
    x = torch.rand(3, 1, 187, 96, generator=torch.Generator().manual_seed(1)) * 4 - 2
    with torch.inference_mode():
        for block in blocks:
            shortcut = block(x)
            block.training = True  # conv -> ReLU -> BN (still in eval) -> max, as TF orders them
            try:
                plain = block(x)
                exact = copy.deepcopy(block).double()(x.double())
            finally:
                block.training = False
            # float32 rounding of values up to ~100: the shortcut is as close as TF's order.
            # Which of the two rounds closer depends on the CPU's kernels (the DFT's sums run
            # in another order), so "as close" allows twice the plain order's error.
            scale = exact.abs().max().item()
            shortcut_error = (shortcut - exact).abs().max().item()
            assert shortcut_error <= 2e-6 * scale
            assert shortcut_error <= 2 * (plain - exact).abs().max().item()


@pytest.mark.parametrize(
    ("width", "kernel"), [(96, (7, 38)), (96, (7, 67)), (95, (3, 40)), (96, (7, 1))]
)
def test_spectral_frequency_max_is_the_max_of_the_convolution(width, kernel):
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(12, 1, *kernel, generator=generator)
    padded = torch.randn(2, 1, 40 + kernel[0] - 1, width, generator=generator) * 3
    spectral = spectral_frequency_max(padded, spectral_kernel(weight, width))
    exact = F.conv2d(padded.double(), weight.double()).amax(dim=3)
    assert spectral.shape == exact.shape == (2, 12, 40)
    torch.testing.assert_close(
        spectral, exact.float(), atol=2e-6 * exact.abs().max().item(), rtol=0
    )


def test_eval_forward_also_runs_with_autograd_on(model):
    # The DFT constants are cached across calls; ones made under inference mode could not
    # take part in a forward that records gradients.
    patches = torch.rand(2, 187, 96, generator=torch.Generator().manual_seed(3)) * 3
    with torch.inference_mode():
        inferred = model(patches).taggram
    recorded = model(patches).taggram
    assert recorded.requires_grad
    torch.testing.assert_close(recorded.detach(), inferred, atol=1e-6, rtol=0)


def test_patches_of_the_wrong_shape_are_refused(model):
    with pytest.raises(ModelError, match=r"\(n, frames, 96\)"):
        model.infer(np.zeros((2, 187, 95), dtype=np.float32))
