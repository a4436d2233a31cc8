"""fastconv.datasets: the IDX reader (valid files of every type code, corrupt / truncated ones), the loaders on the
real Fashion-MNIST files and on small files made here, the search order, the verified download (served from
local bytes: these tests never touch the network), and iterate_minibatches.

The real files come from Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist/), which CI
installs: without them these tests fail, unless FASTCONV_ALLOW_NO_DATA=1 is set (then they skip).
"""

import gzip
import hashlib
import io
import struct
import urllib.error
from pathlib import Path

import fastconv.datasets as ds
import numpy as np
import pytest
from conftest import no_real_data
from fastconv.datasets import IDXError, iterate_minibatches, load_fashion_mnist, load_mnist, read_idx

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
STEMS = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]

TYPE_CODES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.int16,
    0x0C: np.int32,
    0x0D: np.float32,
    0x0E: np.float64,
}


# ======================================================================================================
# helpers


@pytest.fixture(scope="module")
def fashion_dir():
    """The real Fashion-MNIST directory; a missing one fails (CI must install it), or skips if allowed."""
    if all((FASHION_DIR / f"{s}.gz").is_file() for s in STEMS):
        return FASHION_DIR
    no_real_data(f"files not found in {FASHION_DIR}")


@pytest.fixture(scope="module")
def fashion(fashion_dir):
    """load_fashion_mnist() with the defaults, loaded once for the module."""
    return load_fashion_mnist(path=fashion_dir, download=False)


@pytest.fixture(scope="module")
def fashion_raw(fashion_dir):
    """The four real files decoded independently of read_idx (gzip + fixed header offsets)."""
    out = {}
    for stem, offset in zip(STEMS, (16, 8, 16, 8)):
        data = gzip.decompress((fashion_dir / f"{stem}.gz").read_bytes())
        out[stem] = np.frombuffer(data, dtype=np.uint8, offset=offset)
    return out


def idx_bytes(arr, code=None):
    """The IDX encoding of ``arr`` (big-endian), written here from the format's definition."""
    arr = np.asarray(arr)
    if code is None:
        code = {np.dtype(v): k for k, v in TYPE_CODES.items()}[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(np.dtype(TYPE_CODES[code]).newbyteorder(">")).tobytes()


def write(path, data, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No FASTCONV_DATA, an empty user cache and an empty system root: only what a test puts there is found."""
    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ds, "_SYSTEM_ROOT", tmp_path / "system")

    def no_network(url, timeout=None):
        raise AssertionError(f"network access attempted: {url}")

    monkeypatch.setattr(ds, "_urlopen", no_network)
    return tmp_path


def make_dataset(directory, n_train=5, n_test=3, h=28, w=28, seed=0, gz=(True, False, True, False)):
    """Four small IDX files in ``directory``; returns (train_images, train_labels, test_images, test_labels)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = [
        rng.integers(0, 256, (n_train, h, w), dtype=np.uint8),
        rng.integers(0, 10, n_train, dtype=np.uint8),
        rng.integers(0, 256, (n_test, h, w), dtype=np.uint8),
        rng.integers(0, 10, n_test, dtype=np.uint8),
    ]
    for stem, arr, z in zip(STEMS, arrays, gz):
        write(directory / (stem + (".gz" if z else "")), idx_bytes(arr), gz=z)
    return arrays


# ======================================================================================================
# read_idx: valid files


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("code", sorted(TYPE_CODES), ids=[f"0x{c:02X}" for c in sorted(TYPE_CODES)])
def test_read_idx_type_codes(tmp_path, code, gz):
    rng = np.random.default_rng(code)
    dtype = np.dtype(TYPE_CODES[code])
    if dtype.kind == "f":
        arr = rng.standard_normal((3, 4, 5)).astype(dtype) * 1e3
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, (3, 4, 5), endpoint=True, dtype=dtype)
    out = read_idx(write(tmp_path / "a.idx", idx_bytes(arr, code), gz))
    assert out.dtype == dtype and out.dtype.isnative
    assert out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable


def test_read_idx_big_endian(tmp_path):
    """The payload is big-endian: bytes 01 02 are 258 as a short, 00 00 01 00 are 256 as an int."""
    data = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    np.testing.assert_array_equal(read_idx(write(tmp_path / "s", data)), [258, -2])
    data = bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(read_idx(write(tmp_path / "i", data)), [256])


@pytest.mark.parametrize("shape", [(7,), (2, 3), (1, 2, 3, 4), (0, 5)])
def test_read_idx_shapes(tmp_path, shape):
    arr = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "a", idx_bytes(arr))), arr)
    assert read_idx(write(tmp_path / "b.gz", idx_bytes(arr), gz=True)).shape == shape


def test_read_idx_gzip_by_magic_not_name(tmp_path):
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "plain.gz", idx_bytes(arr))), arr)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "packed.idx", idx_bytes(arr), gz=True)), arr)


def test_read_idx_multi_member_gzip(tmp_path):
    arr = np.arange(100, dtype=np.uint8).reshape(10, 10)
    data = idx_bytes(arr)
    (tmp_path / "m.gz").write_bytes(gzip.compress(data[:37]) + gzip.compress(data[37:]))
    np.testing.assert_array_equal(read_idx(tmp_path / "m.gz"), arr)


def test_read_idx_real_files(fashion_dir, fashion_raw):
    x = read_idx(fashion_dir / "train-images-idx3-ubyte.gz")
    t = read_idx(fashion_dir / "train-labels-idx1-ubyte.gz")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert t.shape == (60000,) and t.dtype == np.uint8
    np.testing.assert_array_equal(x.reshape(-1), fashion_raw["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(t, fashion_raw["train-labels-idx1-ubyte"])
    assert read_idx(fashion_dir / "t10k-images-idx3-ubyte.gz").shape == (10000, 28, 28)


def test_read_idx_raw_real_file(tmp_path, fashion_dir, fashion_raw):
    data = gzip.decompress((fashion_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    t = read_idx(write(tmp_path / "t10k-labels-idx1-ubyte", data))
    np.testing.assert_array_equal(t, fashion_raw["t10k-labels-idx1-ubyte"])


# ======================================================================================================
# read_idx: invalid files


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_idx_truncated_images(tmp_path, gz):
    """A header promising the 60,000 MNIST images followed by 1000 bytes."""
    data = bytes([0, 0, 8, 3]) + struct.pack(">III", 60000, 28, 28) + bytes(1000)
    path = write(tmp_path / "train-images-idx3-ubyte", data, gz)
    with pytest.raises(IDXError, match=r"expected 47040000 bytes .*found 1000") as exc:
        read_idx(path)
    assert str(path) in str(exc.value) and "truncated" in str(exc.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_idx_truncated_small(tmp_path, gz):
    """Small enough that the payload buffer is allocated: the shortfall is still found."""
    arr = np.arange(120, dtype=np.int16).reshape(4, 30)
    path = write(tmp_path / "a", idx_bytes(arr)[:-3], gz)
    with pytest.raises(IDXError, match=r"expected 240 bytes .*found 237"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_idx_trailing_bytes(tmp_path, gz):
    path = write(tmp_path / "a", idx_bytes(np.zeros((2, 2), np.uint8)) + b"xyz", gz)
    with pytest.raises(IDXError, match=r"3 trailing bytes after 4 bytes"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize(
    "head, match",
    [
        (bytes([1, 0, 8, 1]), "two zero bytes"),
        (bytes([0, 7, 8, 1]), "two zero bytes"),
        (bytes([0, 0, 0x07, 1]), "unknown type code 0x07"),
        (bytes([0, 0, 0x0A, 1]), "unknown type code 0x0A"),
        (bytes([0, 0, 8, 0]), "number of dimensions is 0"),
    ],
)
def test_read_idx_bad_magic(tmp_path, head, match, gz):
    path = write(tmp_path / "bad", head + struct.pack(">I", 4) + bytes(4), gz)
    with pytest.raises(IDXError, match=match) as exc:
        read_idx(path)
    assert "bad magic number" in str(exc.value) and str(path) in str(exc.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "expected 4 bytes of magic number, found 0"),
        (bytes([0, 0, 8]), "expected 4 bytes of magic number, found 3"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 1, 0, 0]), r"expected 12 bytes of dimensions .*found 6"),
    ],
)
def test_read_idx_truncated_header(tmp_path, data, match, gz):
    with pytest.raises(IDXError, match=match):
        read_idx(write(tmp_path / "h", data, gz))


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_idx_huge_dims_rejected_before_allocation(tmp_path, gz):
    """(2**32-1)**3 doubles: refused from the header alone (no overflow, no giant allocation)."""
    data = bytes([0, 0, 0x0E, 3]) + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(8)
    with pytest.raises(IDXError, match="more than the limit"):
        read_idx(write(tmp_path / "huge", data, gz))


def test_read_idx_corrupt_gzip(tmp_path):
    rng = np.random.default_rng(5)
    good = gzip.compress(idx_bytes(rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)))
    # garbage inside the deflate stream
    bad = bytearray(good)
    bad[len(bad) // 2 : len(bad) // 2 + 16] = bytes(range(16))
    (tmp_path / "garbled.gz").write_bytes(bytes(bad))
    # a wrong CRC-32 in the trailer (the data itself decompresses)
    crc = bytearray(good)
    crc[-8] ^= 0xFF
    (tmp_path / "crc.gz").write_bytes(bytes(crc))
    # the stream cut in half
    (tmp_path / "cut.gz").write_bytes(good[: len(good) // 2])
    # a bad gzip header (compression method 7)
    hdr = bytearray(good)
    hdr[2] = 7
    (tmp_path / "method.gz").write_bytes(bytes(hdr))
    # junk after a complete gzip member
    (tmp_path / "junk.gz").write_bytes(good + b"not gzip")
    for name in ("garbled.gz", "crc.gz", "cut.gz", "method.gz", "junk.gz"):
        path = tmp_path / name
        with pytest.raises(IDXError, match="corrupt gzip stream|truncated") as exc:
            read_idx(path)
        assert str(path) in str(exc.value), name


def test_read_idx_errors_are_value_errors(tmp_path):
    assert issubclass(IDXError, ValueError)
    with pytest.raises(ValueError):
        read_idx(write(tmp_path / "x", b"\x00\x00\x08"))


def test_read_idx_bad_path_argument(tmp_path):
    with pytest.raises(TypeError, match="path"):
        read_idx(42)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


# ======================================================================================================
# loaders on the real Fashion-MNIST files


def test_fashion_defaults(fashion, fashion_raw):
    (x, t), (xt, tt) = fashion
    assert x.shape == (60000, 784) and x.dtype == np.float32
    assert xt.shape == (10000, 784) and xt.dtype == np.float32
    assert t.shape == (60000,) and t.dtype == np.int64
    assert tt.shape == (10000,) and tt.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0 and xt.min() == 0.0 and xt.max() == 1.0
    expected = fashion_raw["train-images-idx3-ubyte"].astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(x.reshape(-1), expected)
    np.testing.assert_array_equal(t, fashion_raw["train-labels-idx1-ubyte"])


def test_fashion_known_facts(fashion):
    (x, t), (_, tt) = fashion
    np.testing.assert_array_equal(np.bincount(t, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(tt, minlength=10), [1000] * 10)
    # the first labels of each split: 9 = ankle boot, 0 = T-shirt/top, ...
    np.testing.assert_array_equal(t[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    np.testing.assert_array_equal(tt[:10], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
    # the training set's per-pixel mean and standard deviation (0.2860, 0.3530) quoted by every tutorial
    assert abs(float(x.mean(dtype=np.float64)) - 0.2860) < 5e-4
    assert abs(float(x.std(dtype=np.float64)) - 0.3530) < 5e-4


def test_fashion_options(fashion_dir, fashion):
    (x8, t1), (x8t, t1t) = load_fashion_mnist(
        normalize=False, flatten=False, one_hot_label=True, path=fashion_dir, download=False
    )
    (x, t), _ = fashion
    assert x8.shape == (60000, 1, 28, 28) and x8.dtype == np.uint8 and x8t.shape == (10000, 1, 28, 28)
    assert x8.max() == 255
    np.testing.assert_array_equal(x8.reshape(60000, 784).astype(np.float32) / np.float32(255), x)
    assert t1.shape == (60000, 10) and t1.dtype == np.float32 and t1t.shape == (10000, 10)
    np.testing.assert_array_equal(t1.sum(axis=1), 1.0)
    np.testing.assert_array_equal(t1.argmax(axis=1), t)
    assert set(np.unique(t1)) == {0.0, 1.0}


def test_fashion_from_system_dir(isolated, fashion_dir, monkeypatch, fashion):
    """With nothing else configured the Debian package's directory is found."""
    monkeypatch.setattr(ds, "_SYSTEM_ROOT", fashion_dir.parent)
    (x, _), (_, tt) = load_fashion_mnist(flatten=False)
    assert x.shape == (60000, 1, 28, 28)
    np.testing.assert_array_equal(tt, fashion[1][1])


def test_fashion_via_env(isolated, fashion_dir, monkeypatch):
    monkeypatch.setenv("FASTCONV_DATA", str(fashion_dir))
    (_, t), _ = load_fashion_mnist(download=False, normalize=False)
    assert t.shape == (60000,)


# ======================================================================================================
# loaders on small files: search order, validation


def test_load_small_dataset(isolated):
    arrays = make_dataset(isolated / "d")
    (x, t), (xt, tt) = load_mnist(path=isolated / "d", download=False)
    np.testing.assert_array_equal(x, arrays[0].reshape(5, 784).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(t, arrays[1].astype(np.int64))
    np.testing.assert_array_equal(xt, arrays[2].reshape(3, 784).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(tt, arrays[3])
    (x, t), _ = load_mnist(normalize=False, flatten=False, one_hot_label=True, path=str(isolated / "d"))
    np.testing.assert_array_equal(x, arrays[0][:, None])
    np.testing.assert_array_equal(t, np.eye(10, dtype=np.float32)[arrays[1]])


def test_search_order(isolated, monkeypatch):
    """path= before $FASTCONV_DATA before $FASTCONV_DATA/<name> before the cache before the system dir."""
    places = {
        "path": isolated / "explicit",
        "env": isolated / "env",
        "env_sub": isolated / "env2" / "fashion-mnist",
        "cache": isolated / "cache" / "fastconv" / "fashion-mnist",
        "system": isolated / "system" / "fashion-mnist",
    }
    sizes = {key: i + 1 for i, key in enumerate(places)}  # a different train size tells where it came from
    for key, directory in places.items():
        make_dataset(directory, n_train=sizes[key])

    def train_size(**kw):
        return load_fashion_mnist(download=False, **kw)[0][0].shape[0]

    monkeypatch.setenv("FASTCONV_DATA", str(places["env"]))
    assert train_size(path=places["path"]) == sizes["path"]
    assert train_size() == sizes["env"]
    monkeypatch.setenv("FASTCONV_DATA", str(isolated / "env2"))
    assert train_size() == sizes["env_sub"]
    monkeypatch.delenv("FASTCONV_DATA")
    assert train_size() == sizes["cache"]
    for f in places["cache"].iterdir():
        f.unlink()
    assert train_size() == sizes["system"]
    # an explicit path without the files falls through to the next places, saying so
    with pytest.warns(RuntimeWarning, match="not where you pointed") as caught:
        assert train_size(path=isolated / "nowhere") == sizes["system"]
    assert str(caught[0].message) == (
        f"fashion-mnist: the IDX files are not where you pointed ({isolated / 'nowhere'} (path=): no such "
        f"directory); using {places['system']} (system)"
    )


def test_an_empty_fastconv_data_is_not_passed_over_silently(isolated, monkeypatch):
    """issue 19: an empty $FASTCONV_DATA fell through to the next place without a word."""
    make_dataset(isolated / "system" / "fashion-mnist", n_train=3)
    (isolated / "empty").mkdir()
    monkeypatch.setenv("FASTCONV_DATA", str(isolated / "empty"))
    with pytest.warns(RuntimeWarning) as caught:
        assert load_fashion_mnist(download=False)[0][0].shape[0] == 3
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"{isolated / 'empty'} ($FASTCONV_DATA): missing train-images-idx3-ubyte[.gz]" in message
    assert f"{isolated / 'empty' / 'fashion-mnist'} ($FASTCONV_DATA): no such directory" in message
    assert message.endswith(f"using {isolated / 'system' / 'fashion-mnist'} (system)")
    with pytest.warns(RuntimeWarning, match="not where you pointed"):
        assert ds.locate("fashion-mnist", download=False) == (
            isolated / "system" / "fashion-mnist",
            "system",
        )
    monkeypatch.delenv("FASTCONV_DATA")
    assert ds.locate("fashion-mnist") == (isolated / "system" / "fashion-mnist", "system")
    assert ds.missing_files(isolated / "empty") == [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]


def test_not_found_message(isolated, monkeypatch):
    (isolated / "partial").mkdir()
    write(isolated / "partial" / "train-images-idx3-ubyte", idx_bytes(np.zeros((1, 2, 2), np.uint8)))
    monkeypatch.setenv("FASTCONV_DATA", str(isolated / "envdir"))
    with pytest.raises(FileNotFoundError) as exc:
        load_fashion_mnist(path=isolated / "partial", download=False)
    msg = str(exc.value)
    for place in (
        isolated / "partial",
        isolated / "envdir",
        isolated / "envdir" / "fashion-mnist",
        isolated / "cache" / "fastconv" / "fashion-mnist",
        isolated / "system" / "fashion-mnist",
    ):
        assert str(place) in msg, place
    assert "missing train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz]" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "path=" in msg and "FASTCONV_DATA" in msg and "download=False" in msg


def test_counts_must_agree(isolated):
    d = isolated / "d"
    make_dataset(d)
    write(d / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(IDXError, match=r"holds 3 images but .*t10k-labels-idx1-ubyte holds 4 labels"):
        load_mnist(path=d, download=False)


def test_labels_and_images_checked(isolated):
    d = isolated / "d"
    make_dataset(d)
    write(d / "t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 10, 2], np.uint8)))
    with pytest.raises(IDXError, match=r"label 10 outside 0..9"):
        load_mnist(path=d, download=False)
    make_dataset(d)
    write(d / "t10k-images-idx3-ubyte.gz", idx_bytes(np.zeros((3, 784), np.uint8)), gz=True)
    with pytest.raises(IDXError, match=r"expected uint8 images of shape \(N, H, W\)"):
        load_mnist(path=d, download=False)


def test_corrupt_file_in_dataset(isolated):
    d = isolated / "d"
    make_dataset(d)
    good = (d / "train-images-idx3-ubyte.gz").read_bytes()
    (d / "train-images-idx3-ubyte.gz").write_bytes(good[:-20])
    with pytest.raises(IDXError, match="train-images-idx3-ubyte.gz"):
        load_mnist(path=d, download=False)


@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist])
def test_loader_bad_arguments(isolated, loader):
    for name in ("normalize", "flatten", "one_hot_label", "download"):
        with pytest.raises(TypeError, match=name):
            loader(**{name: "yes"})
    with pytest.raises(TypeError, match="path"):
        loader(path=3)
    f = write(isolated / "afile", b"")
    with pytest.raises(ValueError, match="path: expected a directory"):
        loader(path=f)


# ======================================================================================================
# download (the opener is replaced: nothing leaves the machine)


class Server:
    """Serves bytes per file name through ds._urlopen's interface; records the calls."""

    def __init__(self, files):
        self.files = files
        self.calls = []

    def __call__(self, url, timeout=None):
        self.calls.append((url, timeout))
        name = url.rsplit("/", 1)[1]
        if name not in self.files:
            raise urllib.error.URLError(f"no such file {name}")
        return io.BytesIO(self.files[name])


def fashion_gz(fashion_dir):
    return {f"{s}.gz": (fashion_dir / f"{s}.gz").read_bytes() for s in STEMS}


def test_download_fashion(isolated, fashion_dir, monkeypatch):
    server = Server(fashion_gz(fashion_dir))
    monkeypatch.setattr(ds, "_urlopen", server)
    (_, t), _ = load_fashion_mnist(normalize=False)
    cache = isolated / "cache" / "fastconv" / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s}.gz" for s in STEMS)
    for s in STEMS:
        assert (cache / f"{s}.gz").read_bytes() == server.files[f"{s}.gz"]
    assert len(server.calls) == 4
    assert all(url.startswith(ds._MIRRORS["fashion-mnist"][0]) for url, _ in server.calls)
    assert all(isinstance(timeout, float) and 0 < timeout <= 120 for _, timeout in server.calls)
    np.testing.assert_array_equal(np.bincount(t), [6000] * 10)
    # the second load reads the cache: no more requests
    load_fashion_mnist()
    assert len(server.calls) == 4


def test_download_accepts_recompressed(isolated, fashion_dir, monkeypatch):
    """Fashion-MNIST is verified on its decompressed data, so a mirror's different gzip settings pass."""
    files = fashion_gz(fashion_dir)
    files["t10k-labels-idx1-ubyte.gz"] = gzip.compress(gzip.decompress(files["t10k-labels-idx1-ubyte.gz"]), 1)
    monkeypatch.setattr(ds, "_urlopen", Server(files))
    _, (_, tt) = load_fashion_mnist()
    np.testing.assert_array_equal(np.bincount(tt), [1000] * 10)


def test_download_rejects_corrupted(isolated, fashion_dir, monkeypatch):
    files = fashion_gz(fashion_dir)
    labels = bytearray(gzip.decompress(files["train-labels-idx1-ubyte.gz"]))
    labels[100] = (labels[100] + 1) % 10  # one wrong label, still a valid IDX file
    files["train-labels-idx1-ubyte.gz"] = gzip.compress(bytes(labels))
    server = Server(files)
    monkeypatch.setattr(ds, "_urlopen", server)
    with pytest.raises(FileNotFoundError) as exc:
        load_fashion_mnist()
    msg = str(exc.value)
    assert "SHA-256 mismatch" in msg
    for mirror in ds._MIRRORS["fashion-mnist"]:  # every mirror was tried
        assert mirror + "train-labels-idx1-ubyte.gz" in msg
    cache = isolated / "cache" / "fastconv" / "fashion-mnist"
    assert not (cache / "train-labels-idx1-ubyte.gz").exists()
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def test_download_rejects_garbage_and_oversize(isolated, fashion_dir, monkeypatch):
    files = fashion_gz(fashion_dir)
    files["t10k-labels-idx1-ubyte.gz"] = b"<html>not found</html>"
    monkeypatch.setattr(ds, "_urlopen", Server(files))
    with pytest.raises(FileNotFoundError, match="not a valid gzip file"):
        load_fashion_mnist()
    # the real file (5125 bytes) from a mirror that serves more than the limit allows
    files["t10k-labels-idx1-ubyte.gz"] = (fashion_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    monkeypatch.setattr(ds, "_DOWNLOAD_MAX_BYTES", 1000)
    with pytest.raises(FileNotFoundError, match="more than 1000 bytes"):
        load_fashion_mnist()
    cache = isolated / "cache" / "fastconv" / "fashion-mnist"
    # the three files that did verify stay cached; nothing else is left behind
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        f"{s}.gz" for s in STEMS if s != "t10k-labels-idx1-ubyte"
    )


def test_download_network_error(isolated, monkeypatch):
    monkeypatch.setattr(ds, "_urlopen", Server({}))
    with pytest.raises(FileNotFoundError) as exc:
        load_mnist()
    msg = str(exc.value)
    assert "download into" in msg and "no such file" in msg
    assert "download them from https://yann.lecun.com/exdb/mnist/" in msg and "FASTCONV_DATA" in msg


def test_download_mnist_gz_checksums(isolated, monkeypatch):
    """MNIST is verified on the .gz bytes (the published SHA-256); checked with small stand-in files."""
    src = isolated / "src"
    make_dataset(src, gz=(True,) * 4)
    files = {f"{s}.gz": (src / f"{s}.gz").read_bytes() for s in STEMS}
    sums = {s: ("gz", hashlib.sha256(files[f"{s}.gz"]).hexdigest()) for s in STEMS}
    monkeypatch.setitem(ds._CHECKSUMS, "mnist", sums)
    monkeypatch.setattr(ds, "_urlopen", Server(files))
    (x, _), _ = load_mnist()
    assert x.shape == (5, 784)
    # the same data recompressed has other .gz bytes: rejected
    cache = isolated / "cache" / "fastconv" / "mnist"
    for p in cache.iterdir():
        p.unlink()
    files["train-images-idx3-ubyte.gz"] = gzip.compress(
        gzip.decompress(files["train-images-idx3-ubyte.gz"]), 1
    )
    with pytest.raises(FileNotFoundError, match="SHA-256 mismatch of the file"):
        load_mnist()


def test_published_checksums_table():
    for name in ("mnist", "fashion-mnist"):
        assert sorted(ds._CHECKSUMS[name]) == sorted(STEMS)
        for kind, digest in ds._CHECKSUMS[name].values():
            assert kind in ("gz", "idx") and len(digest) == 64 and int(digest, 16) >= 0


def test_fashion_checksums_match_installed(fashion_dir):
    for stem in STEMS:
        kind, digest = ds._CHECKSUMS["fashion-mnist"][stem]
        assert kind == "idx"
        assert (
            hashlib.sha256(gzip.decompress((fashion_dir / f"{stem}.gz").read_bytes())).hexdigest() == digest
        )


# ======================================================================================================
# iterate_minibatches


def paired(n=23):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return x, np.arange(n) * 10


def test_minibatches_without_replacement():
    x, t = paired()
    batches = list(iterate_minibatches(x, t, 5, rng=0))
    assert [len(b[0]) for b in batches] == [5, 5, 5, 5, 3]
    seen = np.concatenate([xb[:, 0] // 2 for xb, _ in batches]).astype(int)
    assert sorted(seen) == list(range(23))
    assert not np.array_equal(seen, np.arange(23))  # shuffled
    for xb, tb in batches:
        np.testing.assert_array_equal(tb, xb[:, 0] // 2 * 10)
    dropped = list(iterate_minibatches(x, t, 5, rng=0, drop_last=True))
    assert [len(b[0]) for b in dropped] == [5, 5, 5, 5]


def test_minibatches_in_order():
    x, t = paired()
    batches = list(iterate_minibatches(x, t, 10, shuffle=False))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), t)
    assert [len(b[0]) for b in batches] == [10, 10, 3]
    assert np.shares_memory(batches[0][0], x)


def test_minibatches_seeds():
    x, t = paired()

    def epoch(rng):
        return [tb.tolist() for _, tb in iterate_minibatches(x, t, 4, rng=rng)]

    assert epoch(7) == epoch(7) == epoch(np.random.default_rng(7))
    assert epoch(7) != epoch(8)
    gen = np.random.default_rng(3)
    assert epoch(gen) != epoch(gen)  # a Generator advances: a new permutation per epoch
    np.random.seed(11)
    a = epoch(None)
    np.random.seed(11)
    assert epoch(None) == a
    np.random.seed(11)
    assert a[0] == (np.random.permutation(23)[:4] * 10).tolist()


def test_minibatches_book_trainer():
    """replace=True: max(N // batch_size, 1) steps of np.random.choice(N, batch_size), as the book's Trainer."""
    x, t = paired(23)
    np.random.seed(5)
    got = [tb // 10 for _, tb in iterate_minibatches(x, t, 5, replace=True)]
    np.random.seed(5)
    want = [np.random.choice(23, 5) for _ in range(23 // 5)]
    assert len(got) == 4
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert len(list(iterate_minibatches(x, t, 50, replace=True, rng=1))) == 1
    assert all(len(xb) == 50 for xb, _ in iterate_minibatches(x, t, 50, replace=True, rng=1))


def test_minibatches_bad_arguments():
    x, t = paired()
    for bs in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            iterate_minibatches(x, t, bs)
    for bs in (2.0, True, "4"):
        with pytest.raises(TypeError, match="batch_size"):
            iterate_minibatches(x, t, bs)
    with pytest.raises(ValueError, match="lengths differ"):
        iterate_minibatches(x, t[:-1], 4)
    with pytest.raises(ValueError, match="replace=True"):
        iterate_minibatches(x, t, 4, replace=True, shuffle=False)
    with pytest.raises(ValueError, match="drop_last"):
        iterate_minibatches(x, t, 24, drop_last=True)
    with pytest.raises(TypeError, match="rng"):
        iterate_minibatches(x, t, 4, rng="seed")
    with pytest.raises(TypeError, match="shuffle"):
        iterate_minibatches(x, t, 4, shuffle=None)
    with pytest.raises(ValueError, match="no examples"):
        iterate_minibatches(x[:0], t[:0], 4)
    with pytest.raises(ValueError, match="batch axis"):
        iterate_minibatches(np.float32(1), t, 4)
