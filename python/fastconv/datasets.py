"""MNIST and Fashion-MNIST: a strict IDX reader, the book's ``load_mnist`` API, and epoch mini-batches.

``load_mnist(normalize=True, flatten=True, one_hot_label=False)`` returns what the book's
``dataset/mnist.py`` returns, ``((x_train, t_train), (x_test, t_test))``, read straight from the four IDX
files (gzip or raw) with no pickle cache. Files are looked for in: ``path=``, ``$FASTCONV_DATA`` (and
``$FASTCONV_DATA/<name>/``), the user cache (``$XDG_CACHE_HOME`` or ``~/.cache``, ``/fastconv/<name>``),
``/usr/share/datasets/<name>/`` (Debian's ``dataset-fashion-mnist``), and last a verified download into the
cache. A ``path=`` or ``$FASTCONV_DATA`` without the files is passed over with a ``RuntimeWarning`` that says
where the data came from instead; :func:`locate` tells where the files are. ``read_idx`` checks the magic,
the dimensions and the exact payload size before it allocates.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.request
import warnings
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "DataNotFoundError",
    "IDXError",
    "iterate_minibatches",
    "load_fashion_mnist",
    "load_mnist",
    "locate",
    "missing_files",
    "read_idx",
]

# ======================================================================================================
# IDX format

# Type code -> big-endian element dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_TYPE_NAMES = {0x08: "ubyte", 0x09: "byte", 0x0B: "short", 0x0C: "int", 0x0D: "float", 0x0E: "double"}

# Deflate cannot expand data by more than ~1032:1 (258-byte matches coded in 2 bits), so a gzip file of
# S bytes holds at most this many bytes per compressed byte (plus slack for tiny files); a header that
# promises more is rejected before the payload buffer is allocated.
_DEFLATE_MAX_RATIO = 1032
_DEFLATE_SLACK = 1 << 16

# Largest payload read_idx will allocate (the 60,000 MNIST images are 47 MB).
_MAX_PAYLOAD_BYTES = 1 << 34

_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """A file that is not a valid IDX file (bad magic, wrong size, corrupt gzip stream)."""


def _read_exact(f, n: int, what: str, name: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise IDXError(f"{name}: truncated file: expected {n} bytes of {what}, found {len(data)}")
    return data


def _parse_header(f, name: str, total_size: int | None):
    """Read magic and dimensions from ``f``; return (dtype, shape, payload_bytes)."""
    magic = _read_exact(f, 4, "magic number", name)
    if magic[0] != 0 or magic[1] != 0:
        raise IDXError(
            f"{name}: bad magic number {magic.hex()}: an IDX file starts with two zero bytes, a type code "
            f"and the number of dimensions"
        )
    code, ndim = magic[2], magic[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({n})" for c, n in _IDX_TYPE_NAMES.items())
        raise IDXError(
            f"{name}: bad magic number {magic.hex()}: unknown type code 0x{code:02X} (known: {known})"
        )
    if ndim == 0:
        raise IDXError(f"{name}: bad magic number {magic.hex()}: number of dimensions is 0")
    raw_dims = _read_exact(f, 4 * ndim, f"dimensions ({ndim} x 4-byte sizes)", name)
    shape = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    dtype = _IDX_DTYPES[code]
    # Python ints: the product cannot overflow; compare it with the limits before anything is allocated.
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dtype.itemsize
    what = f"{_IDX_TYPE_NAMES[code]} data of shape {shape}"
    if nbytes > _MAX_PAYLOAD_BYTES:
        raise IDXError(
            f"{name}: header promises {nbytes} bytes of {what}, more than the limit {_MAX_PAYLOAD_BYTES}"
        )
    if total_size is not None:
        header = 4 + 4 * ndim
        found = max(total_size - header, 0)
        if found < nbytes:
            raise IDXError(f"{name}: truncated file: expected {nbytes} bytes of {what}, found {found}")
        if found > nbytes:
            raise IDXError(f"{name}: {found - nbytes} trailing bytes after {nbytes} bytes of {what}")
    return dtype, shape, nbytes, what


def _to_native(buf: np.ndarray, dtype: np.dtype, shape) -> np.ndarray:
    arr = buf.view(dtype)
    if not dtype.isnative:  # swap the big-endian elements in place (no second copy of the payload)
        arr = arr.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return arr.reshape(shape)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip is detected by its magic bytes ``1f 8b``, not by the file name.

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order with the file's shape and element type (uint8, int8,
        int16, int32, float32 or float64 for the IDX type codes 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E).

    Raises
    ------
    IDXError (a ValueError)
        Bad magic number, unknown type code, truncated data, trailing bytes, or a corrupt gzip stream;
        the message names the file and what is wrong.
    TypeError
        ``path`` is not a str or path-like object.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    name = os.fspath(path)
    with open(name, "rb") as raw:
        head = raw.read(2)
        raw.seek(0)
        size = os.fstat(raw.fileno()).st_size
        if head != _GZIP_MAGIC:
            dtype, shape, nbytes, _ = _parse_header(raw, name, size)
            buf = np.empty(nbytes, dtype=np.uint8)
            got = raw.readinto(memoryview(buf))
            if got != nbytes:  # the file shrank after fstat
                raise IDXError(f"{name}: truncated file: expected {nbytes} bytes of data, found {got}")
            return _to_native(buf, dtype, shape)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                dtype, shape, nbytes, what = _parse_header(f, name, None)
                if nbytes > _DEFLATE_MAX_RATIO * size + _DEFLATE_SLACK:
                    # The file cannot hold that much: count what it holds (without keeping it) and say so,
                    # rather than allocate the promised size first.
                    found = sum(len(chunk) for chunk in _chunks(f))
                    raise IDXError(
                        f"{name}: truncated file: expected {nbytes} bytes of {what}, found {found}"
                    )
                buf = np.empty(nbytes, dtype=np.uint8)
                view = memoryview(buf)
                got = 0
                while got < nbytes:
                    n = f.readinto(view[got:])
                    if not n:
                        break
                    got += n
                if got < nbytes:
                    raise IDXError(f"{name}: truncated file: expected {nbytes} bytes of {what}, found {got}")
                # Reading on to the end of the stream also checks the gzip CRC and length trailer.
                extra = sum(len(chunk) for chunk in _chunks(f, 1 << 16))
                if extra:
                    raise IDXError(f"{name}: {extra} trailing bytes after {nbytes} bytes of {what}")
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise IDXError(f"{name}: corrupt gzip stream: {exc}") from exc
    return _to_native(buf, dtype, shape)


# ======================================================================================================
# dataset files, checksums and mirrors

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# Each checksum is (kind, sha256): kind "gz" hashes the downloaded .gz bytes, kind "idx" the decompressed IDX
# payload (the whole raw file, header included).
#
# MNIST: the SHA-256 of the original .gz files as published (torchvision's and TensorFlow's mirrors of
# yann.lecun.com list the same four sums).
#
# Fashion-MNIST: Zalando publishes only MD5s: of the .gz files (8d4fb7e6c68d591d4c3dfef9ec88bf0d,
# 25c81989df183df01b3e8a0aad5dffbe, bef4ecab320f06d8554ea6380940ec79, bb300cfdad3c16e7a12a480ee83cd310 for
# train-images, train-labels, t10k-images, t10k-labels) and, in torchvision, of the decompressed files
# (f4a8712d7a061bf5bd6d2ca38dc4d50a, 9018921c3c673c538a1fc5bad174d6f9, 8181f5470baa50b63fa0f6fddb340f0a,
# 15d484375f8d13e6eb1aabb0c3f46965). Debian's dataset-fashion-mnist ships the same data recompressed, so its
# .gz bytes differ from Zalando's but its decompressed files have exactly the published MD5s. The SHA-256
# below are those of the decompressed files, hashed from Debian's package, so they verify a download from
# any mirror, whatever gzip settings it used.
_CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte": ("gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte": ("gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte": ("gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte": ("gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": (
            "idx",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train-labels-idx1-ubyte": (
            "idx",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "t10k-images-idx3-ubyte": ("idx", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "t10k-labels-idx1-ubyte": ("idx", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
}

# Official locations first; each file is tried at each mirror in turn.
_MIRRORS = {
    "mnist": [
        "https://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

# Debian's dataset packages install here (tests point this elsewhere).
_SYSTEM_ROOT = Path("/usr/share/datasets")

_DOWNLOAD_TIMEOUT_S = 30.0
_DOWNLOAD_MAX_BYTES = 64 << 20  # the largest file (Fashion-MNIST train images) is 26 MB

# The opener used for downloads; tests replace it to serve local bytes.
_urlopen = urllib.request.urlopen


def _cache_dir(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastconv" / name


def _find_in(directory: Path):
    """(paths by stem, missing stems) for the four files in ``directory`` (.gz preferred over raw)."""
    found, missing = {}, []
    for stem in _FILES.values():
        for candidate in (directory / f"{stem}.gz", directory / stem):
            if candidate.is_file():
                found[stem] = candidate
                break
        else:
            missing.append(stem)
    return found, missing


def missing_files(directory) -> list:
    """The names of the four IDX files (``.gz`` or raw) that ``directory`` lacks (all four if it is none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return list(_FILES.values())
    return _find_in(directory)[1]


class DataNotFoundError(FileNotFoundError):
    """The four IDX files are nowhere and could not be downloaded.

    Attributes
    ----------
    name : str
        The data set (``"mnist"``, ``"fashion-mnist"``).
    searched : list of str
        Each place searched and what was wrong there (and the download's failure).
    how : str
        How to get the files (a package to install, or where to download them).
    """

    def __init__(self, message, name, searched, how):
        super().__init__(message)
        self.name, self.searched, self.how = name, searched, how


def _candidate_dirs(name: str, path):
    dirs = []
    if path is not None:
        dirs.append(("path=", Path(path)))
    env = os.environ.get("FASTCONV_DATA")
    if env:
        dirs.append(("$FASTCONV_DATA", Path(env)))
        dirs.append(("$FASTCONV_DATA", Path(env) / name))
    dirs.append(("user cache", _cache_dir(name)))
    dirs.append(("system", _SYSTEM_ROOT / name))
    return dirs


def _chunks(f, size: int = 1 << 20):
    """The rest of binary stream ``f``, ``size`` bytes at a time (the last chunk may be shorter)."""
    while chunk := f.read(size):
        yield chunk


def _sha256_of(path: Path, kind: str) -> str:
    h = hashlib.sha256()
    opener = gzip.open if kind == "idx" else open
    with opener(path, "rb") as f:
        for chunk in _chunks(f):
            h.update(chunk)
    return h.hexdigest()


def _download_file(name: str, stem: str, dest: Path) -> Path:
    """Fetch ``stem``.gz into ``dest``, verified; return its path or raise OSError listing each failure."""
    kind, want = _CHECKSUMS[name][stem]
    target = dest / f"{stem}.gz"
    errors = []
    for base in _MIRRORS[name]:
        url = base + stem + ".gz"
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=dest)
        tmp = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as out, _urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
                total = 0
                for chunk in _chunks(resp):
                    total += len(chunk)
                    if total > _DOWNLOAD_MAX_BYTES:
                        raise OSError(f"more than {_DOWNLOAD_MAX_BYTES} bytes, not the expected file")
                    out.write(chunk)
            try:
                got = _sha256_of(tmp, kind)
            except (OSError, EOFError, zlib.error) as exc:
                raise OSError(f"not a valid gzip file ({exc})") from exc
            if got != want:
                what = "decompressed data" if kind == "idx" else "file"
                raise OSError(f"SHA-256 mismatch of the {what}: expected {want}, got {got}")
            os.replace(tmp, target)
            return target
        except (OSError, ValueError, http.client.HTTPException) as exc:  # reported; the next mirror is tried
            errors.append(f"{url}: {exc}")
        finally:
            if tmp.exists():
                tmp.unlink()
    raise OSError("; ".join(errors))


def _passed_over(name: str, skipped: list, directory: Path, label: str) -> None:
    """Warn that a place the caller named (path=, $FASTCONV_DATA) lacked the files, and where they came
    from instead."""
    named = [s for s in skipped if s[1] in ("path=", "$FASTCONV_DATA") and s[1] != label]
    if named:
        where = "; ".join(f"{d} ({lab}): {why}" for d, lab, why in named)
        warnings.warn(
            f"{name}: the IDX files are not where you pointed ({where}); using {directory} ({label})",
            RuntimeWarning,
            stacklevel=4,
        )


def _locate(name: str, path, download: bool):
    """(paths of the four files of dataset ``name``, their directory, where that is: ``"path="``,
    ``"$FASTCONV_DATA"``, ``"user cache"``, ``"system"`` or ``"downloaded"``); search order in the module
    docstring."""
    skipped = []
    for label, directory in _candidate_dirs(name, path):
        if not directory.is_dir():
            skipped.append((directory, label, "no such directory"))
            continue
        found, missing = _find_in(directory)
        if not missing:
            _passed_over(name, skipped, directory, label)
            return found, directory, label
        skipped.append((directory, label, f"missing {', '.join(m + '[.gz]' for m in missing)}"))
    searched = [f"{d} ({lab}): {why}" for d, lab, why in skipped]
    cache = _cache_dir(name)
    if download:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            found, missing = _find_in(cache)
            for stem in missing:
                found[stem] = _download_file(name, stem, cache)
            _passed_over(name, skipped, cache, "downloaded")
            return found, cache, "downloaded"
        except OSError as exc:
            searched.append(f"download into {cache} failed: {exc}")
    else:
        searched.append("(download=False: no download attempted)")
    if name == "fashion-mnist":
        how = "install Debian's package (apt-get install dataset-fashion-mnist)"
    else:
        how = "download them from " + " or ".join(_MIRRORS[name])
    raise DataNotFoundError(
        f"{name}: the four IDX files ({', '.join(s + '[.gz]' for s in _FILES.values())}) were not found.\n"
        "Searched:\n" + "\n".join("  " + s for s in searched) + "\n"
        f"To get them: {how}, or put the four files in a directory and pass path=<dir> or set "
        f"FASTCONV_DATA=<dir>, or call with download=True on a machine with internet access.",
        name,
        searched,
        how,
    )


def locate(name: str, *, path=None, download: bool = True):
    """Where the loaders find (or download) the four IDX files of ``name``.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        The data set.
    path, download
        As for :func:`load_mnist`.

    Returns
    -------
    (pathlib.Path, str)
        The directory holding the four files, and which place of the search it is: ``"path="``,
        ``"$FASTCONV_DATA"``, ``"user cache"``, ``"system"`` (``/usr/share/datasets``) or ``"downloaded"``.

    Raises
    ------
    DataNotFoundError
        (a ``FileNotFoundError``) The files are nowhere and could not be downloaded.
    """
    if name not in _MIRRORS:
        raise ValueError(f"name: expected one of {sorted(_MIRRORS)}, got {name!r}")
    _, directory, label = _locate(name, path, _check_flag(download, "download"))
    return directory, label


# ======================================================================================================
# loaders (the book's API)


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _load(name: str, normalize, flatten, one_hot_label, path, download):
    normalize = _check_flag(normalize, "normalize")
    flatten = _check_flag(flatten, "flatten")
    one_hot_label = _check_flag(one_hot_label, "one_hot_label")
    download = _check_flag(download, "download")
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a directory as str or os.PathLike, got {type(path).__name__}")
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"path: expected a directory holding the four IDX files, got the file {path}")
    files = _locate(name, path, download)[0]

    out = []
    for split in ("train", "test"):
        img_path, lab_path = files[_FILES[f"{split}_images"]], files[_FILES[f"{split}_labels"]]
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise IDXError(
                f"{img_path}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}"
            )
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise IDXError(
                f"{lab_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}"
            )
        if images.shape[0] != labels.shape[0]:
            raise IDXError(
                f"{img_path} holds {images.shape[0]} images but {lab_path} holds {labels.shape[0]} labels"
            )
        if labels.size and labels.max() > 9:
            raise IDXError(f"{lab_path}: label {int(labels.max())} outside 0..9")
        n, h, w = images.shape
        x = images.reshape(n, h * w) if flatten else images.reshape(n, 1, h, w)
        if normalize:
            x = x.astype(np.float32)
            x /= np.float32(255.0)
        if one_hot_label:
            t = np.zeros((n, 10), dtype=np.float32)
            t[np.arange(n), labels] = 1.0
        else:
            t = labels.astype(np.int64)
        out.append((x, t))
    return tuple(out)


_LOADER_DOC = """Load {title} as the book's ``load_mnist`` does.

    Parameters
    ----------
    normalize : bool, default True
        Pixels as float32 in [0, 1] (value / 255); otherwise uint8 in 0..255.
    flatten : bool, default True
        Images of shape (N, 784); otherwise (N, 1, 28, 28).
    one_hot_label : bool, default False
        Labels as (N, 10) float32 one-hot rows; otherwise int64 class indices of shape (N,).
    path : str or os.PathLike, optional
        A directory holding the four IDX files (``train-images-idx3-ubyte[.gz]``,
        ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``),
        searched first. Then ``$FASTCONV_DATA`` and ``$FASTCONV_DATA/{name}/``, the user cache
        (``$XDG_CACHE_HOME`` or ``~/.cache``, then ``fastconv/{name}/``), and ``/usr/share/datasets/{name}/``.
        A ``path`` or ``$FASTCONV_DATA`` without the files is passed over with a ``RuntimeWarning`` naming
        where the files came from instead.
    download : bool, default True
        When the files are found nowhere, download them from the official mirrors into the user cache,
        verifying their SHA-256. Files found locally are used as they are (``read_idx`` still checks
        their structure and sizes).

    Returns
    -------
    ((x_train, t_train), (x_test, t_test))
        60,000 training and 10,000 test examples.

    Raises
    ------
    DataNotFoundError
        (a ``FileNotFoundError``) The files are nowhere and could not be downloaded; the message lists every
        place searched and how to get the files.
    IDXError (a ValueError)
        A file is corrupt, or images and labels disagree in number.
    """


def load_mnist(normalize=True, flatten=True, one_hot_label=False, *, path=None, download=True):
    return _load("mnist", normalize, flatten, one_hot_label, path, download)


def load_fashion_mnist(normalize=True, flatten=True, one_hot_label=False, *, path=None, download=True):
    return _load("fashion-mnist", normalize, flatten, one_hot_label, path, download)


load_mnist.__doc__ = _LOADER_DOC.format(title="MNIST (handwritten digits)", name="mnist")
load_fashion_mnist.__doc__ = _LOADER_DOC.format(
    title="Fashion-MNIST (Zalando's article images; Debian package dataset-fashion-mnist)",
    name="fashion-mnist",
)


# ======================================================================================================
# mini-batches


def _as_rng(rng):
    """None -> the global NumPy random state (np.random.seed controls it, as in the book)."""
    if rng is None:
        return np.random  # the module-level functions draw from the global RandomState
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng: expected a numpy.random.Generator, a RandomState, an int seed or None, got {type(rng).__name__}"
    )


def iterate_minibatches(x, t, batch_size, *, shuffle=True, replace=False, rng=None, drop_last=False):
    """Yield the mini-batches ``(x_batch, t_batch)`` of one epoch.

    Parameters
    ----------
    x, t : array_like
        Inputs and targets with the same length along axis 0.
    batch_size : int
        Examples per batch (>= 1).
    shuffle : bool, default True
        Without replacement: visit the examples in a fresh random permutation (otherwise in order; the
        batches are then views of ``x`` and ``t``).
    replace : bool, default False
        The book's ``Trainer``: ``max(N // batch_size, 1)`` steps, each ``rng.choice(N, batch_size)``
        (indices drawn with replacement). Requires ``shuffle=True``.
    rng : numpy.random.Generator, RandomState, int or None
        Randomness source; an int seeds a new Generator; None uses the global ``np.random`` state, so
        ``np.random.seed`` reproduces the book's sequence of batches.
    drop_last : bool, default False
        Without replacement: skip the last batch when it is smaller than ``batch_size``.

    Yields
    ------
    (x_batch, t_batch)
    """
    shuffle = _check_flag(shuffle, "shuffle")
    replace = _check_flag(replace, "replace")
    drop_last = _check_flag(drop_last, "drop_last")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size: expected an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    x, t = np.asarray(x), np.asarray(t)
    if x.ndim == 0 or t.ndim == 0:
        raise ValueError(f"x, t: expected arrays with a batch axis, got shapes {x.shape} and {t.shape}")
    n = x.shape[0]
    if t.shape[0] != n:
        raise ValueError(f"x, t: lengths differ along axis 0: x has {n}, t has {t.shape[0]}")
    if n == 0:
        raise ValueError("x: no examples (length 0 along axis 0)")
    if replace and not shuffle:
        raise ValueError("shuffle=False with replace=True: batches drawn with replacement are random")
    if drop_last and not replace and batch_size > n:
        raise ValueError(f"batch_size: {batch_size} > {n} examples with drop_last=True leaves no batch")
    gen = _as_rng(rng)
    return _batches(x, t, int(batch_size), shuffle, replace, gen, drop_last)


def _batches(x, t, batch_size, shuffle, replace, gen, drop_last):
    n = x.shape[0]
    if replace:
        for _ in range(max(n // batch_size, 1)):
            idx = gen.choice(n, batch_size)
            yield x[idx], t[idx]
        return
    stop = n - n % batch_size if drop_last else n
    if not shuffle:
        for i in range(0, stop, batch_size):
            yield x[i : i + batch_size], t[i : i + batch_size]
        return
    perm = gen.permutation(n)
    for i in range(0, stop, batch_size):
        idx = perm[i : i + batch_size]
        yield x[idx], t[idx]


# ======================================================================================================
# text: Debian's fortune files and the generated seq2seq tasks (the sequel's data; see fastconv._textdata)

from ._textdata import (
    addition_lines,
    date_lines,
    load_addition,
    load_date,
    load_fortunes,
    load_fortunes_zh,
    read_fortunes,
    sequence_vocab,
)

__all__ += [
    "addition_lines",
    "date_lines",
    "load_addition",
    "load_date",
    "load_fortunes",
    "load_fortunes_zh",
    "read_fortunes",
    "sequence_vocab",
]
