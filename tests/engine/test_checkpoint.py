"""The TensorFlow checkpoint reader and the musicnn weight conversion, without TensorFlow."""

from __future__ import annotations

import hashlib
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier.engine import registry
from classifier.engine.checkpoint import (
    DATA_FILE,
    INDEX_FILE,
    TABLE_MAGIC,
    crc32c,
    read_checkpoint,
    read_entries,
    unmask_crc,
)
from classifier.engine.errors import ModelError
from classifier.engine.musicnn import parameter_shapes, state_dict_from_tf
from classifier.engine.registry import checkpoint_dir
from classifier.engine.weights import CACHE_FILE, load_musicnn

MUSICNN_PARAMETERS = 792_079

# The MSD musicnn graph, layer by layer in TF's creation order (models.py build_musicnn).
CONV_KERNELS = {
    "conv2d": (7, 38, 1, 204),
    "conv2d_1": (7, 67, 1, 204),
    "conv2d_2": (128, 1, 1, 51),
    "conv2d_3": (64, 1, 1, 51),
    "conv2d_4": (32, 1, 1, 51),
    "conv2d_5": (7, 561, 1, 64),
    "conv2d_6": (7, 64, 1, 64),
    "conv2d_7": (7, 64, 1, 64),
    "dense": (1506, 200),
    "dense_1": (200, 50),
}
BN_SIZES = [1, 204, 204, 51, 51, 51, 64, 64, 64, 1506, 200]


def expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for layer, kernel in CONV_KERNELS.items():
        shapes[f"{layer}/kernel"] = kernel
        shapes[f"{layer}/bias"] = (kernel[-1],)
    for i, size in enumerate(BN_SIZES):
        layer = "batch_normalization" + (f"_{i}" if i else "")
        for name in ("gamma", "beta", "moving_mean", "moving_variance"):
            shapes[f"{layer}/{name}"] = (size,)
    return shapes


@pytest.fixture(scope="module")
def wheel_dir() -> Path:
    return checkpoint_dir()


@pytest.fixture(scope="module")
def variables(wheel_dir: Path) -> dict[str, np.ndarray]:
    return read_checkpoint(wheel_dir)


@pytest.fixture
def copy_dir(wheel_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the checkpoint, free to damage."""
    target = tmp_path / "MSD_musicnn"
    target.mkdir()
    for name in (INDEX_FILE, DATA_FILE):
        shutil.copyfile(wheel_dir / name, target / name)
    return target


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


# --- the real checkpoint ------------------------------------------------------------------


def test_reads_every_model_variable_with_its_shape(variables):
    assert {name: v.shape for name, v in variables.items()} == expected_shapes()
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in variables.values())


def test_parameter_total_is_musicnn_msd(variables):
    assert sum(v.size for v in variables.values()) == MUSICNN_PARAMETERS


def test_optimizer_state_is_left_out(wheel_dir, variables):
    stored = read_entries(wheel_dir)
    adam = sorted(name for name in stored if "/Adam" in name)
    trainable = [name for name in expected_shapes() if "moving_" not in name]
    # Adam's two moments for every trainable variable (moving statistics are not trained).
    assert adam == sorted(f"{name}/{slot}" for name in trainable for slot in ("Adam", "Adam_1"))
    assert "beta1_power" in stored and "beta2_power" in stored
    assert not [name for name in variables if "Adam" in name or name.endswith("_power")]


def test_values_are_trained_weights(variables):
    # A misplaced offset or byte order would not give positive variances everywhere.
    for i, _ in enumerate(BN_SIZES):
        layer = "batch_normalization" + (f"_{i}" if i else "")
        assert (variables[f"{layer}/moving_variance"] > 0).all()
    assert 0.001 < np.abs(variables["dense_1/kernel"]).mean() < 10


# --- crc32c ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"123456789", 0xE3069283),  # the standard check value
        (bytes(32), 0x8A9136AA),  # RFC 3720 B.4 vectors
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
    ],
)
def test_crc32c_known_vectors(data, expected):
    assert crc32c(data) == expected


@pytest.mark.parametrize("size", [4096, 4097, 65_537, 200_003])
def test_crc32c_of_large_inputs_matches_bitwise_definition(size):
    # Large inputs take the vectorised many-lanes path; it must equal the textbook loop.
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    assert crc32c(data) == crc32c_bitwise(data.tobytes())


def crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_mask_round_trip():
    for crc in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert unmask_crc(mask_crc(crc)) == crc


# --- damaged checkpoints --------------------------------------------------------------------


def test_truncated_index_is_refused(copy_dir):
    index = copy_dir / INDEX_FILE
    index.write_bytes(index.read_bytes()[:-20])
    with pytest.raises(ModelError, match="bad magic"):
        read_checkpoint(copy_dir)


def test_index_shorter_than_its_footer_is_refused(copy_dir):
    (copy_dir / INDEX_FILE).write_bytes(b"\0" * 10)
    with pytest.raises(ModelError, match="truncated"):
        read_checkpoint(copy_dir)


def test_bad_magic_is_refused(copy_dir):
    index = copy_dir / INDEX_FILE
    flip_byte(index, index.stat().st_size - 1)
    with pytest.raises(ModelError, match="bad magic"):
        read_checkpoint(copy_dir)


def test_damaged_index_block_is_refused(copy_dir):
    flip_byte(copy_dir / INDEX_FILE, 100)  # inside the first data block
    with pytest.raises(ModelError, match="index is damaged.*crc32c"):
        read_checkpoint(copy_dir)


def test_truncated_data_is_refused(copy_dir):
    data = copy_dir / DATA_FILE
    data.write_bytes(data.read_bytes()[:1_000_000])
    with pytest.raises(ModelError, match="data file is truncated"):
        read_checkpoint(copy_dir)


def test_damaged_tensor_is_refused(copy_dir):
    entry = read_entries(copy_dir)["dense/kernel"]
    flip_byte(copy_dir / DATA_FILE, entry.offset + entry.size // 2)
    with pytest.raises(ModelError, match="'dense/kernel' fails its crc32c"):
        read_checkpoint(copy_dir)


def test_missing_data_file_is_refused(copy_dir):
    (copy_dir / DATA_FILE).unlink()
    with pytest.raises(ModelError, match="missing"):
        read_checkpoint(copy_dir)


# --- synthetic checkpoints, written here byte by byte ---------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def bundle_entry(dtype: int, shape: tuple[int, ...], offset: int, size: int, crc: int) -> bytes:
    dims = b"".join(b"\x12" + varint(len(d)) + d for d in (b"\x08" + varint(n) for n in shape))
    return (
        b"\x08"
        + varint(dtype)
        + b"\x12"
        + varint(len(dims))
        + dims
        + b"\x20"
        + varint(offset)
        + b"\x28"
        + varint(size)
        + b"\x35"
        + struct.pack("<I", mask_crc(crc))
    )


def block(entries: list[tuple[bytes, bytes]]) -> bytes:
    # Each key shares its prefix with the one before (restart point only at 0), as LevelDB does.
    body, previous = bytearray(), b""
    for key, value in entries:
        shared = len(
            next(
                (
                    p
                    for p in (previous[:i] for i in range(len(previous), -1, -1))
                    if key.startswith(p)
                ),
                b"",
            )
        )
        body += varint(shared) + varint(len(key) - shared) + varint(len(value))
        body += key[shared:] + value
        previous = key
    return bytes(body) + struct.pack("<II", 0, 1)


def write_table(entries: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray()

    def append_block(contents: bytes) -> bytes:
        handle = varint(len(out)) + varint(len(contents))
        trailer = b"\0"
        out.extend(contents + trailer + struct.pack("<I", mask_crc(crc32c(contents + trailer))))
        return handle

    data_handle = append_block(block(entries))
    meta_handle = append_block(block([]))
    index_handle = append_block(block([(entries[-1][0], data_handle)]))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", TABLE_MAGIC)
    return bytes(out + footer)


def write_checkpoint(folder: Path, tensors: dict[str, tuple[int, np.ndarray]]) -> None:
    """A one-shard checkpoint of `name: (dtype enum, array)`, header entry first."""
    folder.mkdir()
    data, entries = bytearray(), [(b"", b"\x08\x01")]  # BundleHeaderProto: num_shards 1
    for name, (dtype, array) in sorted(tensors.items()):
        raw = array.tobytes()
        entries.append(
            (name.encode(), bundle_entry(dtype, array.shape, len(data), len(raw), crc32c(raw)))
        )
        data += raw
    (folder / INDEX_FILE).write_bytes(write_table(entries))
    (folder / DATA_FILE).write_bytes(bytes(data))


def test_synthetic_checkpoint_round_trip(tmp_path):
    tensors = {
        "layer/kernel": np.arange(24, dtype="<f4").reshape(2, 3, 4),
        "layer/kernel/Adam": np.ones(24, dtype="<f4").reshape(2, 3, 4),
        "layer/bias": np.array([1.5, -2.0], dtype="<f4"),
        "scalar": np.array(3.25, dtype="<f4"),
    }
    write_checkpoint(tmp_path / "ckpt", {k: (1, v) for k, v in tensors.items()})
    read = read_checkpoint(tmp_path / "ckpt")
    assert sorted(read) == ["layer/bias", "layer/kernel", "scalar"]
    for name, array in read.items():
        np.testing.assert_array_equal(array, tensors[name])
        assert array.shape == tensors[name].shape


def test_wrong_dtype_is_refused(tmp_path):
    write_checkpoint(tmp_path / "ckpt", {"w": (2, np.zeros(3, dtype="<f8"))})  # DT_DOUBLE
    with pytest.raises(ModelError, match="'w' has dtype 2, expected float32"):
        read_checkpoint(tmp_path / "ckpt")


# --- conversion to the model's parameters ---------------------------------------------------


def test_every_variable_lands_in_the_model(variables):
    state = state_dict_from_tf(variables)
    assert {k: v.shape for k, v in state.items()} == parameter_shapes()
    assert sum(v.size for v in state.values()) == MUSICNN_PARAMETERS
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in state.values())
    # TF's (kh, kw, in, out) kernel becomes (out, in, kh, kw), element for element.
    np.testing.assert_array_equal(
        state["timbral.1.conv.weight"][5, 0, 2, 9], variables["conv2d_1/kernel"][2, 9, 0, 5]
    )
    np.testing.assert_array_equal(
        state["midend.0.conv.weight"][7, 300, 4], variables["conv2d_5/kernel"][4, 300, 0, 7]
    )
    np.testing.assert_array_equal(state["dense.weight"], variables["dense/kernel"].T)


def test_missing_variable_is_refused(variables):
    damaged = {k: v for k, v in variables.items() if k != "conv2d_6/bias"}
    with pytest.raises(ModelError, match="lacks variable 'conv2d_6/bias'"):
        state_dict_from_tf(damaged)


def test_unused_variable_is_refused(variables):
    with pytest.raises(ModelError, match="does not use.*'conv2d_8/kernel'"):
        state_dict_from_tf({**variables, "conv2d_8/kernel": np.zeros((1, 1, 1, 1), "f4")})


def test_misshaped_variable_is_refused(variables):
    damaged = {**variables, "dense/kernel": variables["dense/kernel"].T}
    with pytest.raises(ModelError, match="'dense/kernel' has shape \\(200, 1506\\)"):
        state_dict_from_tf(damaged)


# --- load_musicnn's guards -------------------------------------------------------------------


def test_load_refuses_checkpoint_with_wrong_sha256(copy_dir, tmp_path):
    data = copy_dir / DATA_FILE
    entry = read_entries(copy_dir)["conv2d/kernel"]
    flip_byte(data, entry.offset)
    actual = hashlib.sha256(data.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as refused:
        load_musicnn(cache_dir=cache, checkpoint=copy_dir)
    message = str(refused.value)
    assert str(data) in message
    assert actual in message and registry.MUSICNN_SHA256[DATA_FILE] in message
    assert not (cache / CACHE_FILE).exists()


def test_load_without_the_wheel_says_how_to_install_it(tmp_path, monkeypatch):
    # A None entry in sys.modules makes importlib report the package as absent.
    monkeypatch.setitem(sys.modules, "musicnn", None)
    with pytest.raises(ModelError, match="pip install --no-deps musicnn==0.1.0"):
        load_musicnn(cache_dir=tmp_path)
