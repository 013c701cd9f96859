"""The IDX reader and writer: round trips, every way a file can be wrong, and a fuzz test."""
from __future__ import annotations

import gzip
import io
import math
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerodl.data.idx import DTYPES, idx_bytes, load_pair, read_idx, read_idx_stream, write_idx
from zerodl.errors import DataError

IMAGES = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("name", ["a-idx", "a-idx.gz"])
def test_round_trip_every_dtype_plain_and_gz(tmp_path, dtype, name):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    write_idx(tmp_path / name, array)
    raw = (tmp_path / name).read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_gzip_is_detected_by_magic_not_name(tmp_path):
    write_idx(tmp_path / "looks-plain", IMAGES, compress=True)
    write_idx(tmp_path / "looks.gz", IMAGES, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "looks-plain"), IMAGES)
    np.testing.assert_array_equal(read_idx(tmp_path / "looks.gz"), IMAGES)


def test_header_is_the_mnist_layout():
    raw = idx_bytes(IMAGES)
    assert raw[:4] == b"\x00\x00\x08\x03"  # ubyte, 3 dimensions: MNIST's 0x00000803
    assert struct.unpack(">3I", raw[4:16]) == (3, 28, 28)
    assert len(raw) == 16 + IMAGES.size


def _write(tmp_path, data: bytes, gz: bool = False, name: str = "f-idx3-ubyte") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _error(path) -> str:
    with pytest.raises(DataError) as e:
        read_idx(path)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path) + ": ")
    return message


def test_bad_magic(tmp_path):
    raw = bytearray(idx_bytes(IMAGES))
    raw[0] = 0x01
    assert "magic number 0x01000803 does not start with two zero bytes" in _error(_write(tmp_path, bytes(raw)))


def test_unknown_dtype_code(tmp_path):
    raw = bytearray(idx_bytes(IMAGES))
    raw[2] = 0x07
    assert "unknown IDX data type code 0x07" in _error(_write(tmp_path, bytes(raw)))


def test_zero_dimensions(tmp_path):
    assert "announces 0 dimensions" in _error(_write(tmp_path, b"\x00\x00\x08\x00"))


def test_too_short_for_magic(tmp_path):
    assert "2 bytes, too short for the 4-byte magic number" in _error(_write(tmp_path, b"\x00\x00"))


def test_truncated_header(tmp_path):
    assert "truncated header: 3 dimensions announced, 6 of their 12 bytes present" in \
        _error(_write(tmp_path, idx_bytes(IMAGES)[:10]))


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_data(tmp_path, gz):
    message = _error(_write(tmp_path, idx_bytes(IMAGES)[:16 + 1000], gz=gz))
    assert f"truncated: header announces {IMAGES.size} bytes of data, file holds 1000" in message


def test_trailing_bytes_plain(tmp_path):
    message = _error(_write(tmp_path, idx_bytes(IMAGES) + b"junk"))
    assert f"trailing bytes: header announces {IMAGES.size} bytes of data, file holds {IMAGES.size + 4}" in message


def test_trailing_bytes_inside_gz(tmp_path):
    message = _error(_write(tmp_path, idx_bytes(IMAGES) + b"junk", gz=True))
    assert f"trailing bytes: header announces {IMAGES.size} bytes of data, file holds more" in message


def test_junk_after_the_gzip_stream(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES)) + b"not gzip")
    assert "corrupt gzip data" in _error(path)


def test_truncated_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(IMAGES))
    path = tmp_path / "f.gz"
    path.write_bytes(packed[: len(packed) - 20])
    assert "truncated gzip stream" in _error(path)


def test_gzip_crc_mismatch(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes(IMAGES)))
    packed[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    path = tmp_path / "f.gz"
    path.write_bytes(bytes(packed))
    assert "corrupt gzip data (CRC check failed" in _error(path)


def test_gzip_bomb_is_refused_by_header_size_without_reading(tmp_path):
    # Header announces 64 GiB: refused on the numbers, before any data is read.
    header = b"\x00\x00\x08\x03" + struct.pack(">3I", 1 << 16, 1 << 10, 1 << 10)
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(header + bytes(1 << 20)))
    assert "header announces 68719476736 bytes of data (shape 65536x1024x1024), more than the" in _error(path)


def test_gzip_bomb_within_limit_is_read_only_up_to_header_size(tmp_path):
    # A small honest header followed by 64 MiB of zeros: stops one byte past the announced data.
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb", compresslevel=1) as g:
        g.write(b"\x00\x00\x08\x01" + struct.pack(">I", 10))
        for _ in range(64):
            g.write(bytes(1 << 20))
    assert "trailing bytes: header announces 10 bytes of data, file holds more" in _error(path)


def test_missing_file_and_folder(tmp_path):
    assert _error(tmp_path / "nope").endswith(": no such file")
    assert _error(tmp_path).endswith(": is a folder, not a file")


def test_header_limit_is_a_parameter():
    with pytest.raises(DataError, match="more than the 100-byte limit"):
        read_idx_stream(io.BytesIO(idx_bytes(IMAGES)), "x", max_bytes=100)


# --- images + labels --------------------------------------------------------------

def _pair(tmp_path, images, labels):
    write_idx(tmp_path / "images.gz", images)
    write_idx(tmp_path / "labels", labels)
    return tmp_path / "images.gz", tmp_path / "labels"


def test_load_pair_good(tmp_path):
    labels = np.array([0, 9, 5], dtype=np.uint8)
    images, got = load_pair(*_pair(tmp_path, IMAGES, labels))
    np.testing.assert_array_equal(images, IMAGES)
    np.testing.assert_array_equal(got, labels)


def test_load_pair_count_mismatch(tmp_path):
    images, labels = _pair(tmp_path, IMAGES, np.array([0, 1], dtype=np.uint8))
    with pytest.raises(DataError, match=r"labels: 2 labels for the 3 images of .*images\.gz$"):
        load_pair(images, labels)


def test_load_pair_label_out_of_range(tmp_path):
    images, labels = _pair(tmp_path, IMAGES, np.array([0, 10, 12], dtype=np.uint8))
    with pytest.raises(DataError, match=r"label 10 at index 1 is out of range 0-9 \(2 out of range in all\)"):
        load_pair(images, labels)


def test_load_pair_images_and_labels_swapped(tmp_path):
    images, labels = _pair(tmp_path, IMAGES, np.array([0, 1, 2], dtype=np.uint8))
    with pytest.raises(DataError, match=r"labels: expected images as unsigned bytes in 3 dimensions .* got uint8 of shape 3$"):
        load_pair(labels, images)


def test_load_pair_empty(tmp_path):
    images, labels = _pair(tmp_path, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8))
    with pytest.raises(DataError, match="holds no images"):
        load_pair(images, labels)


# --- fuzz: random and mutated bytes ---------------------------------------------------

class CountingReader(io.BytesIO):
    """Remembers how far into the bytes the reader went."""

    furthest = 0

    def read(self, n=-1):
        out = super().read(n)
        self.furthest = max(self.furthest, self.tell())
        return out


def _expected(raw: bytes):
    """What a correct reader must return for raw, judged independently: (dtype, shape, data) or None."""
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in DTYPES or raw[3] == 0:
        return None
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        return None
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(DTYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    if len(body) != math.prod(shape) * dtype.itemsize:
        return None
    return dtype, shape, body


@st.composite
def idx_files(draw):
    code = draw(st.sampled_from(sorted(DTYPES)))
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
    dtype = np.dtype(DTYPES[code])
    body = draw(st.binary(min_size=math.prod(shape) * dtype.itemsize, max_size=math.prod(shape) * dtype.itemsize))
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + body


@st.composite
def mutated(draw):
    raw = bytearray(draw(idx_files()))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "append"]))
        at = draw(st.integers(0, len(raw)))
        if kind == "flip" and at < len(raw):
            raw[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del raw[at:at + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del raw[at:]
        elif kind == "append":
            raw += draw(st.binary(min_size=1, max_size=8))
    return bytes(raw)


def _check(raw: bytes, result_or_error):
    want = _expected(raw)
    if isinstance(result_or_error, DataError):
        assert want is None, f"refused a valid file: {result_or_error}"
        return
    assert want is not None, "accepted an invalid file"
    dtype, shape, body = want
    assert result_or_error.shape == shape and result_or_error.dtype == dtype.newbyteorder("=")
    assert result_or_error.astype(dtype).tobytes() == body


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(mutated(), st.binary(max_size=64)))
def test_fuzz_plain_bytes(raw):
    stream = CountingReader(raw)
    try:
        result = read_idx_stream(stream, "fuzz")
    except DataError as e:
        assert "\n" not in str(e)
        result = e
    _check(raw, result)
    # Never reads past the data: at most the header, the announced bytes and one probe byte.
    if len(raw) >= 4 and raw[2] in DTYPES and raw[3] and len(raw) >= 4 + 4 * raw[3]:
        ndim = raw[3]
        announced = math.prod(struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])) * np.dtype(DTYPES[raw[2]]).itemsize
        assert stream.furthest <= 4 + 4 * ndim + announced + 1
    else:
        assert stream.furthest <= 4 + 4 * 255


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=mutated(), damage=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=2))
def test_fuzz_gzip_files(raw, damage):
    packed = bytearray(gzip.compress(raw))
    for at, xor in damage:  # damage the compressed bytes too
        packed[at % len(packed)] ^= xor
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.gz"
        path.write_bytes(bytes(packed))
        try:
            result = read_idx(path)
        except DataError as e:
            assert "\n" not in str(e)
            result = e
    try:  # judged against what gzip itself makes of the bytes
        content = gzip.decompress(bytes(packed))
    except Exception:  # noqa: BLE001 - any failure: the reader must have refused the file
        assert isinstance(result, DataError)
        return
    _check(content, result)
