"""Safe parameter files: atomic ``.npz`` writes; ``.npz`` or the book's ``.pkl`` loads that run no code.

``save_params`` writes a NumPy ``.npz`` archive (no pickle inside) to a temporary file in the target's
directory, flushes and fsyncs it and renames it over the target (``os.replace``), so a reader sees either
the old file or the complete new one, and a failed write leaves the old file intact and no temporary file.

``load_params`` reads ``.npz`` with ``allow_pickle=False``, and ``.pkl`` / ``.pickle`` (the book's
``pickle.dump(params, f)`` files such as ``deep_convnet_params.pkl``) through :class:`SafeUnpickler`, which
admits only the globals NumPy arrays, dtypes and scalars are rebuilt from and ``collections.OrderedDict``;
any other global raises ``pickle.UnpicklingError`` naming it before anything is called.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import tempfile
from collections.abc import Mapping

import numpy as np

__all__ = ["save_params", "load_params", "SafeUnpickler", "safe_pickle_load"]

NPZ_SUFFIXES = (".npz",)
PICKLE_SUFFIXES = (".pkl", ".pickle")


# ======================================================================================================
# restricted unpickler


def _latin1_encode(obj, encoding="latin1"):
    """What ``_codecs.encode`` does for protocol 0-2 pickles of bytes, restricted to latin-1 text."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(
            f"refused _codecs.encode({type(obj).__name__}, {encoding!r}): only latin1 text is admitted"
        )
    return obj.encode("latin1")


def _numpy_globals() -> dict:
    """(module, name) -> object for the NumPy functions and types an array / dtype / scalar pickle names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray, numeric
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): _latin1_encode,
    }
    # NumPy 1.x writes numpy.core.*, NumPy 2.x numpy._core.*; either reads the other's files.
    for pkg in ("numpy.core", "numpy._core"):
        allowed[(f"{pkg}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{pkg}.multiarray", "scalar")] = multiarray.scalar
        # protocol 5 pickles of arrays rebuild them from a buffer
        if hasattr(numeric, "_frombuffer"):
            allowed[(f"{pkg}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


_ALLOWED = None


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only NumPy's array/dtype/scalar globals and ``OrderedDict``.

    Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) raises
    ``pickle.UnpicklingError`` naming it, so nothing outside that list can be called while loading.
    """

    def find_class(self, module, name):
        global _ALLOWED
        if _ALLOWED is None:
            _ALLOWED = _numpy_globals()
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: parameter pickles may only contain NumPy arrays, "
                "dtypes, scalars and dicts"
            ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"refused persistent id {pid!r}: not admitted in parameter pickles")


def safe_pickle_load(file):
    """Unpickle from a binary file object (or ``bytes``) with :class:`SafeUnpickler`.

    Parameters
    ----------
    file : file object or bytes
        Opened in binary mode, or the pickle's bytes.

    Returns
    -------
    object
        The unpickled object (built only from NumPy arrays, dtypes, scalars and plain containers).
    """
    if isinstance(file, (bytes, bytearray, memoryview)):
        file = io.BytesIO(file)
    return SafeUnpickler(file).load()


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


def save_params(params, path) -> None:
    """Write a dict of arrays to ``path`` as ``.npz``, atomically.

    The archive is written to a temporary file in the same directory, flushed and fsynced, then renamed
    over ``path``; if anything fails the temporary file is removed and an existing ``path`` is untouched.

    Parameters
    ----------
    params : dict of str -> ndarray
        The parameters (e.g. a network's ``params``); object arrays are refused.
    path : str or os.PathLike
        Target file; must end in ``.npz``.

    Raises
    ------
    TypeError
        ``params`` is not a dict of str -> ndarray, or ``path`` is not a path.
    ValueError
        ``path`` does not end in ``.npz``, or an array has an object dtype.
    """
    path = _check_path(path)
    if not path.lower().endswith(NPZ_SUFFIXES):
        raise ValueError(f"path: parameters are saved as .npz (no pickle); got {path!r}")
    arrays = _check_params(params, "params")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # make the rename itself durable where the platform allows opening a directory
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def load_params(path) -> dict:
    """Read parameters from ``.npz`` (``allow_pickle=False``) or the book's ``.pkl`` (restricted unpickler).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz`` written by :func:`save_params` / ``np.savez``, or a ``.pkl`` / ``.pickle`` holding a dict
        of arrays (``pickle.dump(params, f)``, as the book's ``save_params`` writes).

    Returns
    -------
    dict of str -> ndarray
        The arrays, in file order.

    Raises
    ------
    pickle.UnpicklingError
        The pickle names a global other than NumPy's array/dtype/scalar constructors or ``OrderedDict``.
    ValueError
        Unknown extension, or the file does not hold a dict of numeric arrays.
    TypeError
        ``path`` is not a path, or a pickled value is not an array.
    """
    path = _check_path(path)
    lower = path.lower()
    if lower.endswith(NPZ_SUFFIXES):
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: not an .npz archive (found a single {type(data).__name__})")
        with data:
            return {key: data[key] for key in data.files}
    if lower.endswith(PICKLE_SUFFIXES):
        with open(path, "rb") as f:
            obj = safe_pickle_load(f)
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: expected a pickled dict of arrays, got {type(obj).__name__}")
        return _check_params(obj, path)
    raise ValueError(
        f"path: unknown parameter file type {path!r}; expected one of "
        f"{', '.join(NPZ_SUFFIXES + PICKLE_SUFFIXES)}"
    )
