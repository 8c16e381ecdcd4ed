"""Read a TensorFlow (V2, single-shard) checkpoint without TensorFlow.

A checkpoint `<prefix>.index` is a LevelDB-format table whose keys are variable names and
whose values are serialized `BundleEntryProto` messages; `<prefix>.data-00000-of-00001`
holds each tensor's raw little-endian bytes at the offset its entry names. Only what the
musicnn checkpoint needs is supported: uncompressed blocks, one shard, float32 tensors.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifier.engine.errors import ModelError

INDEX_FILE = ".index"
DATA_FILE = ".data-00000-of-00001"

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # 1 byte compression type + 4 bytes masked crc32c
NO_COMPRESSION = 0
DT_FLOAT = 1  # tensorflow.DataType enum
# Adam's state, saved beside the model: its per-variable slots and its two step accumulators.
OPTIMIZER_SLOT_MARKER = "/Adam"
OPTIMIZER_SCALARS = frozenset({"beta1_power", "beta2_power"})

# Wire types of the protobuf encoding.
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
_FIXED_SIZE = {FIXED64: 8, FIXED32: 4}


# --- crc32c (Castagnoli), as TensorFlow masks it ------------------------------------------


def _crc_table() -> np.ndarray:
    poly = 0x82F63B78  # reflected Castagnoli polynomial
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ poly, table >> 1).astype(np.uint32)
    return table


_TABLE = _crc_table()
_TABLE_LIST = [int(v) for v in _TABLE]
# Below this size a plain Python loop beats setting up the vectorised lanes.
_LANE_MIN_BYTES = 4096


def _crc_raw_python(data: bytes, state: int) -> int:
    table = _TABLE_LIST
    for byte in data:
        state = (state >> 8) ^ table[(state ^ byte) & 0xFF]
    return state


def _apply(matrix: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Multiply 32-bit states by a GF(2) matrix given as its 32 column vectors."""
    out = np.zeros_like(states)
    for bit in range(32):
        out ^= np.where((states >> np.uint32(bit)) & np.uint32(1), matrix[bit], np.uint32(0))
    return out


def _zero_bytes_matrix(count: int) -> np.ndarray:
    """The linear map that advances a raw crc register over `count` zero bytes."""
    basis = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    step = (basis >> np.uint32(8)) ^ _TABLE[basis & np.uint32(0xFF)]
    result = basis.copy()  # identity
    while count:
        if count & 1:
            result = _apply(step, result)
        step = _apply(step, step)
        count >>= 1
    return result


def _crc_raw_lanes(data: np.ndarray, state: int) -> int:
    """The raw crc register after `data`, computed as many parallel lanes then combined.

    The register update is linear over GF(2), so equal-length lanes can be run side by
    side in numpy (the first one carrying the incoming state, the rest starting at zero)
    and folded pairwise: crc(a + b) = shift_len(b)(crc(a)) xor crc(b).
    """
    lanes = 1 << max(0, min(13, (len(data) // 64).bit_length() - 1))
    lane_len = len(data) // lanes
    head = len(data) - lanes * lane_len
    state = _crc_raw_python(data[:head].tobytes(), state)
    columns = np.ascontiguousarray(data[head:].reshape(lanes, lane_len).T).astype(np.uint32)
    states = np.zeros(lanes, dtype=np.uint32)
    states[0] = state
    for column in columns:
        states = (states >> np.uint32(8)) ^ _TABLE[(states ^ column) & np.uint32(0xFF)]
    shift = _zero_bytes_matrix(lane_len)
    while len(states) > 1:  # lanes is a power of two
        states = _apply(shift, states[0::2]) ^ states[1::2]
        shift = _apply(shift, shift)
    return int(states[0])


def crc32c(data: bytes | np.ndarray) -> int:
    """CRC-32C of `data` (table-driven; vectorised over lanes for large inputs)."""
    array = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    if len(array) < _LANE_MIN_BYTES:
        raw = _crc_raw_python(array.tobytes(), 0xFFFFFFFF)
    else:
        raw = _crc_raw_lanes(array, 0xFFFFFFFF)
    return raw ^ 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """Undo TensorFlow/LevelDB's crc masking (rotate right 15 bits after subtracting a delta)."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --- protobuf wire format -----------------------------------------------------------------


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at `pos`; return (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ModelError("checkpoint index is truncated inside a varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ModelError("checkpoint index holds a malformed varint (over 10 bytes)")


def proto_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) for each field of a serialized protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
            yield field, value
            continue
        if wire == LENGTH_DELIMITED:
            size, pos = read_varint(buf, pos)
        elif wire in _FIXED_SIZE:
            size = _FIXED_SIZE[wire]
        else:
            raise ModelError(f"checkpoint index holds an unsupported protobuf wire type {wire}")
        if pos + size > len(buf):
            raise ModelError("checkpoint index holds a truncated protobuf message")
        raw = buf[pos : pos + size]
        pos += size
        yield field, (raw if wire == LENGTH_DELIMITED else int.from_bytes(raw, "little"))


@dataclass(frozen=True)
class BundleEntry:
    """The part of TensorFlow's BundleEntryProto that locates and checks one tensor."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None  # masked, as stored


def _message(value: int | bytes) -> bytes:
    """A length-delimited field's bytes; a varint or fixed field in its place is a TypeError."""
    if isinstance(value, int):
        raise TypeError("a protobuf message was expected, got an int")
    return value


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, value in proto_fields(buf):
        if field == 2:  # TensorShapeProto.dim
            size = next((v for f, v in proto_fields(_message(value)) if f == 1), 0)  # Dim.size
            dims.append(int(size))
        elif field == 3 and value:  # unknown_rank
            raise ModelError("checkpoint holds a tensor of unknown rank")
    return tuple(dims)


def parse_bundle_entry(buf: bytes) -> BundleEntry:
    fields: dict[str, Any] = {
        "dtype": 0,
        "shape": (),
        "shard_id": 0,
        "offset": 0,
        "size": 0,
        "crc32c": None,
    }
    for field, value in proto_fields(buf):
        if field == 1:
            fields["dtype"] = value
        elif field == 2:
            fields["shape"] = _parse_shape(_message(value))
        elif field == 3:
            fields["shard_id"] = value
        elif field == 4:
            fields["offset"] = value
        elif field == 5:
            fields["size"] = value
        elif field == 6:
            fields["crc32c"] = value
        elif field == 7:
            raise ModelError("checkpoint holds partitioned (sliced) variables: not supported")
    return BundleEntry(**fields)


# --- LevelDB table ------------------------------------------------------------------------


def _read_handle(buf: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = read_varint(buf, pos)
    size, pos = read_varint(buf, pos)
    return (offset, size), pos


def _read_block(table: bytes, handle: tuple[int, int], what: str) -> bytes:
    offset, size = handle
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(table) - FOOTER_SIZE:
        raise ModelError(f"checkpoint index is truncated: its {what} block runs past the end")
    block = table[offset:end]
    kind = table[end]
    if kind != NO_COMPRESSION:
        raise ModelError(f"checkpoint index {what} block is compressed (type {kind}): unsupported")
    (stored,) = struct.unpack_from("<I", table, end + 1)
    if unmask_crc(stored) != crc32c(table[offset : end + 1]):
        raise ModelError(f"checkpoint index is damaged: its {what} block fails its crc32c check")
    return block


def _block_entries(block: bytes, what: str) -> Iterator[tuple[bytes, bytes]]:
    """Yield (key, value) of a block, undoing the shared-prefix key compression."""
    if len(block) < 4:
        raise ModelError(f"checkpoint index {what} block is too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise ModelError(f"checkpoint index {what} block has a corrupt restart array")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        value_len, pos = read_varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise ModelError(f"checkpoint index {what} block holds a corrupt entry")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + value_len]
        pos += value_len


def read_table(table: bytes) -> dict[str, bytes]:
    """Every key -> value of a LevelDB-format table held in memory."""
    if len(table) < FOOTER_SIZE:
        raise ModelError(f"checkpoint index is truncated ({len(table)} bytes, under a footer)")
    footer = table[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != TABLE_MAGIC:
        raise ModelError(
            f"checkpoint index has bad magic {magic:#018x} (expected {TABLE_MAGIC:#018x}): "
            "not a TensorFlow checkpoint index, or cut short"
        )
    _metaindex, pos = _read_handle(footer, 0)
    index_handle, _ = _read_handle(footer, pos)
    entries: dict[str, bytes] = {}
    index_block = _read_block(table, index_handle, "index")
    for _separator, handle_bytes in _block_entries(index_block, "index"):
        handle, _ = _read_handle(handle_bytes, 0)
        for key, value in _block_entries(_read_block(table, handle, "data"), "data"):
            try:
                entries[key.decode("utf-8")] = value
            except UnicodeDecodeError as exc:
                raise ModelError(f"checkpoint index holds a garbled variable name {key!r}") from exc
    return entries


# --- checkpoint -----------------------------------------------------------------------------


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(f"checkpoint file {path} is missing") from exc
    except OSError as exc:
        raise ModelError(f"checkpoint file {path} cannot be read: {exc}") from exc


def read_entries(prefix_dir: Path) -> dict[str, BundleEntry]:
    """Every variable's BundleEntry (the "" header entry left out)."""
    table = read_table(_read_file(Path(prefix_dir) / INDEX_FILE))
    return {name: parse_bundle_entry(value) for name, value in table.items() if name}


def _tensor(name: str, entry: BundleEntry, data: bytes, verify: bool) -> np.ndarray:
    if entry.dtype != DT_FLOAT:
        raise ModelError(f"checkpoint variable {name!r} has dtype {entry.dtype}, expected float32")
    if entry.shard_id != 0:
        raise ModelError(
            f"checkpoint variable {name!r} lives in shard {entry.shard_id}: "
            "only single-shard checkpoints are supported"
        )
    count = int(np.prod(entry.shape, dtype=np.int64))
    if entry.size != 4 * count:
        raise ModelError(
            f"checkpoint variable {name!r}: {entry.size} bytes for shape "
            f"{entry.shape} (expected {4 * count})"
        )
    end = entry.offset + entry.size
    if end > len(data):
        raise ModelError(
            f"checkpoint data file is truncated: variable {name!r} needs bytes "
            f"{entry.offset}..{end}, the file has {len(data)}"
        )
    raw = np.frombuffer(data, dtype=np.uint8, count=entry.size, offset=entry.offset)
    if verify and entry.crc32c is not None and crc32c(raw) != unmask_crc(entry.crc32c):
        raise ModelError(
            f"checkpoint data file is damaged: variable {name!r} fails its crc32c check"
        )
    return raw.view("<f4").reshape(entry.shape).astype(np.float32)


def read_checkpoint(prefix_dir: Path, verify: bool = True) -> dict[str, np.ndarray]:
    """Every model variable of the checkpoint in `prefix_dir`, optimizer slots left out.

    The files are `<prefix_dir>/.index` and `<prefix_dir>/.data-00000-of-00001` (the
    checkpoint prefix is the folder itself, as in the musicnn wheel). With `verify`,
    each tensor is checked against its stored crc32c.
    """
    entries = read_entries(prefix_dir)
    data = _read_file(Path(prefix_dir) / DATA_FILE)
    return {
        name: _tensor(name, entry, data, verify)
        for name, entry in sorted(entries.items())
        if not is_optimizer_state(name)
    }


def is_optimizer_state(name: str) -> bool:
    """Whether a checkpoint variable belongs to the optimizer rather than the model."""
    return OPTIMIZER_SLOT_MARKER in name or name in OPTIMIZER_SCALARS
