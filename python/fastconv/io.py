"""Safe parameter files: atomic ``.npz`` writes; ``.npz`` or the book's ``.pkl`` loads that run no code.

``save_params`` writes a NumPy ``.npz`` archive (no pickle inside) to a temporary file in the target's
directory, flushes and fsyncs it and renames it over the target (``os.replace``), so a reader sees either
the old file or the complete new one, and a failed write leaves the old file intact and no temporary file.

``load_params`` reads both formats as data (:mod:`fastconv._safeload`): ``.npz`` members are checked from
their headers (plain numeric dtype, shape, size, the caller's expected shapes) before any is inflated, and
``.pkl`` / ``.pickle`` files (the book's ``pickle.dump(params, f)``, e.g. ``deep_convnet_params.pkl``) are
interpreted opcode by opcode without unpickling: NumPy's and pickle's object machinery never runs on a
file's bytes. Every refusal is a :class:`ParamFileError` (a ``ValueError``) naming the file and the problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ._atomic import atomic_write
from ._safeload import (
    MAX_PARAM_BYTES,
    ParamFileError,
    ParamMismatchError,
    check_expected,
    read_npz,
    read_pickle,
)

__all__ = [
    "MAX_PARAM_BYTES",
    "ParamFileError",
    "ParamMismatchError",
    "load_params",
    "safe_pickle_load",
    "save_params",
]
__all__ += ["load_param_list", "save_param_list"]

NPZ_SUFFIXES = (".npz",)
PICKLE_SUFFIXES = (".pkl", ".pickle")
_ZIP_MAGIC = b"PK\x03\x04"  # what every .npz starts with
# The first byte of a pickle of a dict (or list): PROTO (protocols 2-5); MARK, EMPTY_DICT, EMPTY_LIST, GLOBAL
# (OrderedDict) in protocols 0-1
_PICKLE_STARTS = (b"\x80", b"(", b"}", b"]", b"c")


# ======================================================================================================
# the book's pickles, read as data


def safe_pickle_load(file, max_bytes: int = MAX_PARAM_BYTES):
    """Read a pickle of NumPy arrays, dtypes, scalars and plain containers, without unpickling it.

    The opcodes are interpreted by :func:`fastconv._safeload.read_pickle`, which admits only the globals
    NumPy arrays, dtypes and scalars are pickled with (as names: nothing is called), builds every array
    itself from a validated numeric dtype and a buffer of the exact size, and refuses anything else.

    Parameters
    ----------
    file : file object or bytes
        Opened in binary mode, or the pickle's bytes.
    max_bytes : int
        Refuse a pickle larger than this.

    Returns
    -------
    object
        The object the pickle describes.

    Raises
    ------
    ParamFileError
        (a ``ValueError`` and a ``pickle.UnpicklingError``) naming what was refused and where.
    """
    if isinstance(file, (bytes, bytearray, memoryview)):
        data, where = bytes(file), "pickle"
    else:
        data, where = file.read(max_bytes + 1), getattr(file, "name", "pickle")
    if len(data) > max_bytes:
        raise ParamFileError(f"{where}: larger than max_bytes={max_bytes}")
    return read_pickle(data, str(where), max_bytes)


# ======================================================================================================
# validation


def _check_path(path, name="path"):
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"{name}: expected a str or os.PathLike, got {type(path).__name__}") from None


def _check_params(params, where: str) -> dict:
    """A dict of str -> numeric ndarray (no object arrays, which would need pickle)."""
    if not isinstance(params, Mapping):
        raise TypeError(f"{where}: expected a dict of name -> ndarray, got {type(params).__name__}")
    out = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: parameter names must be str, got {key!r} ({type(key).__name__})")
        if not isinstance(value, (np.ndarray, np.generic)):
            raise TypeError(f"{where}: parameter {key!r} is a {type(value).__name__}, expected an ndarray")
        value = np.asarray(value)
        if value.dtype.hasobject:
            raise ValueError(
                f"{where}: parameter {key!r} has dtype {value.dtype}; object arrays are not admitted"
            )
        out[key] = value
    return out


# ======================================================================================================
# save / load


def storable_dtype(dtype) -> np.dtype:
    """The dtype an array of ``dtype`` is written in: float32 for ``ml_dtypes.bfloat16`` (which ``.npz`` can
    only record as raw 2-byte records, ``|V2``), ``dtype`` otherwise. bfloat16 -> float32 -> bfloat16 is exact,
    and loading casts to the network's dtype."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype.kind == "V" and dtype.name == "bfloat16" else dtype


def storable(a: np.ndarray) -> np.ndarray:
    """``a`` as written to a file: :func:`storable_dtype`."""
    return a.astype(np.float32) if storable_dtype(a.dtype) != a.dtype else a


def save_params(params, path) -> None:
    """Write a dict of arrays to ``path`` as ``.npz``, atomically.

    Written by :func:`fastconv._atomic.atomic_write`, the writer of every file fastconv writes: a temporary
    file in the same directory (created with the umask's permissions), flushed and fsynced, then renamed over
    ``path``; if anything fails the temporary file is removed and an existing ``path`` is untouched.

    Parameters
    ----------
    params : dict of str -> ndarray
        The parameters (e.g. a network's ``params``); object arrays are refused; bfloat16 arrays are written
        as float32 (:func:`storable_dtype`).
    path : str or os.PathLike
        Target file. Whatever its extension, the content is an ``.npz`` archive (no pickle): the book's
        ``save_params("params.pkl")`` then ``load_params("params.pkl")`` keeps working, safely.

    Raises
    ------
    TypeError
        ``params`` is not a dict of str -> ndarray, or ``path`` is not a path.
    ValueError
        An array has an object dtype.
    """
    path = _check_path(path)
    arrays = {k: storable(v) for k, v in _check_params(params, "params").items()}
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _is_zip(path: str) -> bool:
    """True when ``path`` is an existing file that starts like a zip archive (as every .npz does)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == _ZIP_MAGIC
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False


def load_params(path, *, expected=None, optional=(), max_bytes: int = MAX_PARAM_BYTES) -> dict:
    """Read parameters from ``.npz`` or the book's ``.pkl``, as data only (no pickle, no code).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz`` archive written by :func:`save_params` / ``np.savez`` (recognised by its content, whatever
        the extension), or a ``.pkl`` / ``.pickle`` holding a dict of arrays (``pickle.dump(params, f)``, as
        the book's ``save_params`` writes).
    expected : mapping of str -> shape, optional
        The names and shapes the caller needs (a network's ``params``). Checked against every ``.npz``
        member's header before any array is read; a missing, unexpected or misshapen entry is refused.
    optional : iterable of str
        Names of ``expected`` that may be absent (batch-norm running statistics).
    max_bytes : int
        Refuse a file whose arrays (``.npz``) or whose own size (``.pkl``) exceed this. Default 1 GiB.

    Returns
    -------
    dict of str -> ndarray
        New writable arrays, in file order.

    Raises
    ------
    ParamFileError
        (a ``ValueError``, and a ``pickle.UnpicklingError``) The file is malformed, holds anything but
        plain bool / integer / float / complex arrays, names a refused global, exceeds a limit, or does not
        match ``expected`` (then a :class:`ParamMismatchError`, its subclass). The message starts with the
        path.
    TypeError
        ``path`` is not a path, or a pickled value is not an array / a name is not a str.
    OSError
        The file cannot be read.
    """
    path = _check_path(path)
    lower = path.lower()
    # save_params writes .npz content whatever the name, so a zip archive is read as .npz (never unpickled)
    if lower.endswith(NPZ_SUFFIXES) or _is_zip(path):
        return read_npz(path, expected, optional, max_bytes)
    if lower.endswith(PICKLE_SUFFIXES):
        with open(path, "rb") as f:
            head = f.read(16)
            if not head:
                raise ParamFileError(f"{path}: empty file (0 bytes), not a pickle")
            if head[:1] not in _PICKLE_STARTS:
                raise ParamFileError(
                    f"{path}: not a pickle of parameters: a pickled dict starts with b'\\x80' "
                    "(protocols 2-5) "
                    f"or one of b'(}}]c' (0-1), this file with {head!r}"
                )
            f.seek(0)
            obj = safe_pickle_load(f, max_bytes)
        if not isinstance(obj, dict):
            raise ParamFileError(f"{path}: expected a pickled dict of arrays, got {type(obj).__name__}")
        params = _check_params(obj, path)
        check_expected({k: v.shape for k, v in params.items()}, expected, optional, path)
        return params
    raise ValueError(
        f"path: unknown parameter file type {path!r}; expected one of "
        f"{', '.join(NPZ_SUFFIXES + PICKLE_SUFFIXES)}"
    )


# ======================================================================================================
# parameter lists (the book sequel's BaseModel.save_params: a pickled list of float16 arrays)

_LIST_KEY = "p{:04d}"  # .npz member names of save_param_list, in list order


def save_param_list(params, path, dtype=None) -> None:
    """Write a list of arrays (a sequel model's ``params``) to ``path`` as ``.npz``, atomically.

    Parameters
    ----------
    params : sequence of ndarray
    path : str or os.PathLike
    dtype : numpy dtype, optional
        Cast every array to it first (the sequel saves ``float16``).
    """
    if isinstance(params, (Mapping, str, bytes)) or not hasattr(params, "__len__"):
        raise TypeError(f"params: expected a list of ndarrays, got {type(params).__name__}")
    arrays = {_LIST_KEY.format(i): (p if dtype is None else np.asarray(p).astype(dtype))
              for i, p in enumerate(params)}
    save_params(arrays, path)


def load_param_list(path, like=None, *, max_bytes: int = MAX_PARAM_BYTES) -> list:
    """Read a list of arrays: the sequel's ``save_params`` pickle (``.pkl``, a list of float16 arrays) read
    as data by :func:`safe_pickle_load` (no code runs), or the ``.npz`` of :func:`save_param_list`.

    Parameters
    ----------
    path : str or os.PathLike
    like : sequence of ndarray, optional
        The model's parameters: the file must hold as many arrays, of the same shapes; each array is
        returned cast to the dtype of its counterpart (the sequel casts to float32).

    Returns
    -------
    list of ndarray

    Raises
    ------
    ParamFileError
        Malformed or hostile file, or not a list of numeric arrays (:class:`ParamMismatchError` when the
        count or a shape differs from ``like``); the message starts with the path.
    """
    path = _check_path(path)
    if path.lower().endswith(NPZ_SUFFIXES) or _is_zip(path):
        data = read_npz(path, None, (), max_bytes)
        keys = [_LIST_KEY.format(i) for i in range(len(data))]
        if sorted(data) != keys:
            raise ParamFileError(f"{path}: expected members {keys[:3]}... written by save_param_list, got "
                                 f"{sorted(data)[:5]}")
        arrays = [data[k] for k in keys]
    elif path.lower().endswith(PICKLE_SUFFIXES):
        with open(path, "rb") as f:
            obj = safe_pickle_load(f, max_bytes)
        if not isinstance(obj, (list, tuple)):
            raise ParamFileError(f"{path}: expected a pickled list of arrays, got {type(obj).__name__}")
        arrays = list(_check_params({str(i): v for i, v in enumerate(obj)}, path).values())
    else:
        raise ValueError(f"path: unknown parameter file type {path!r}; expected one of "
                         f"{', '.join(NPZ_SUFFIXES + PICKLE_SUFFIXES)}")
    for i, a in enumerate(arrays):
        if a.dtype.kind not in "fiu":
            raise ParamFileError(f"{path}: array {i} has dtype {a.dtype}, expected a real number type")
    if like is None:
        return arrays
    like = list(like)
    if len(arrays) != len(like):
        raise ParamMismatchError(f"{path}: holds {len(arrays)} arrays, the model has {len(like)} parameters")
    out = []
    for i, (a, p) in enumerate(zip(arrays, like)):
        if a.shape != p.shape:
            raise ParamMismatchError(f"{path}: array {i} has shape {a.shape}, expected {p.shape}")
        out.append(np.require(a, dtype=p.dtype, requirements=["C", "W"]))
    return out
