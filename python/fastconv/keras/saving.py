"""``model.save('m.keras')`` / ``load_model``: a zip of JSON and NumPy arrays, read back bit for bit.

The archive holds ``metadata.json`` (versions), ``config.json`` (the architecture as layer configs, and the
compile configuration) and ``model.weights.npz`` (every weight in Keras' layout, in ``model.weights`` order,
and the optimizer's iteration count and state). Nothing is pickled: the config is JSON and only layer classes
of ``fastconv.keras.layers`` (and ``Sequential`` / ``Functional``) can be named in it; the arrays are read by
``fastconv.io.load_params``, which checks every member's header against the shapes the rebuilt model expects
before it reads any data. Members are size-checked before they are read. Files are written to a temporary
file beside the target and renamed over it.
"""

from __future__ import annotations

import datetime
import io as _pyio
import json
import os
import shutil
import tempfile
import zipfile

import numpy as np

from .. import __version__ as _fastconv_version
from .. import io as _fio
from . import layers as _layers
from . import losses as _losses
from . import optimizers as _optimizers

__all__ = ["deserialize_layer", "load_model", "load_weights", "save_model", "save_weights", "serialize_layer"]

_CONFIG = "config.json"
_METADATA = "metadata.json"
_WEIGHTS = "model.weights.npz"
_MAX_JSON = 64 << 20  # bytes of config.json / metadata.json read at most


# ======================================================================================================
# configs


def _model_classes():
    from .models import Model, Sequential

    return {"Sequential": Sequential, "Functional": Model, "Model": Model}


def serialize_layer(layer) -> dict:
    """``{'class_name': ..., 'config': ...}`` of a layer or model."""
    from .models import _class_name

    return {"class_name": _class_name(layer), "config": layer.get_config()}


def deserialize_layer(entry, custom_objects=None):
    """A new layer or model from :func:`serialize_layer`'s dict; only known classes are built."""
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("class_name"), str)
        or not isinstance(entry.get("config"), dict)
    ):
        raise ValueError(
            f"Invalid layer config: expected {{'class_name': str, 'config': dict}}, got {entry!r:.200}"
        )
    name = entry["class_name"]
    classes = {**_layers.LAYERS, **_model_classes(), **(custom_objects or {})}
    cls = classes.get(name)
    if cls is None:
        raise TypeError(
            f"Could not locate class '{name}'. fastconv.keras can build: {', '.join(sorted(classes))}"
        )
    return cls.from_config(dict(entry["config"]))


def _weight_keys(model) -> list:
    return [f"{i:04d}.{v.path.replace('/', '.')}" for i, v in enumerate(model.weights)]


def _arrays(model, include_optimizer: bool) -> dict:
    out = dict(zip(_weight_keys(model), model.get_weights()))
    opt = getattr(model, "optimizer", None)
    if include_optimizer and opt is not None and model.compiled:
        for k, a in opt._state_arrays().items():
            out["optimizer." + k.replace("/", ".")] = np.asarray(a)
    return out


def _compile_config(model):
    if not model.compiled:
        return None
    loss = model._loss_obj
    return {
        "optimizer": _optimizers.serialize(model.optimizer),
        "loss": None if loss is None else _losses.serialize(loss),
        "metrics": list(model._metric_ids),
    }


# ======================================================================================================
# writing


def _check_target(filepath, overwrite: bool) -> str:
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    return path


def _atomic_write(path: str, write) -> None:
    """``write(file)`` into a temporary file beside ``path``, fsync, rename over ``path``."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def _npz_bytes(arrays: dict) -> bytes:
    buf = _pyio.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_model(model, filepath, overwrite=True, include_optimizer=True, zipped=None):
    """Write ``model`` to ``filepath`` (must end in ``.keras``); see the module docstring."""
    path = os.fspath(filepath)
    if path.endswith((".h5", ".hdf5")):
        raise NotImplementedError(
            f"The legacy HDF5 format is not supported by fastconv.keras; save to a `.keras` "
            f"file. Received: filepath={path}"
        )
    if not path.endswith(".keras"):
        raise ValueError(
            "Invalid filepath extension for saving. Please add a `.keras` extension for the native "
            f"Keras format. Received: filepath={path}"
        )
    if not model.built:
        raise ValueError(f"Model {model.name} is not built: build it (or call it on data) before saving")
    _check_target(path, overwrite)
    config = {
        "class_name": serialize_layer(model)["class_name"],
        "config": model.get_config(),
        "compile_config": _compile_config(model) if include_optimizer else None,
    }
    metadata = {
        "keras_version": "3 (fastconv.keras)",
        "fastconv_version": _fastconv_version,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
    }
    weights = _npz_bytes(_arrays(model, include_optimizer))

    def write(f):
        with zipfile.ZipFile(f, "w") as z:
            z.writestr(_METADATA, json.dumps(metadata), compress_type=zipfile.ZIP_DEFLATED)
            z.writestr(_CONFIG, json.dumps(config), compress_type=zipfile.ZIP_DEFLATED)
            z.writestr(_WEIGHTS, weights, compress_type=zipfile.ZIP_STORED)

    _atomic_write(path, write)


def save_weights(model, filepath, overwrite=True):
    """Write the weights (Keras' layouts, ``model.weights`` order) to ``filepath`` (``*.weights.npz``)."""
    path = os.fspath(filepath)
    if not path.endswith(".weights.npz"):
        raise ValueError(
            "The filename must end in `.weights.npz` (fastconv.keras writes NumPy archives where "
            f"Keras writes `.weights.h5`). Received: filepath={path}"
        )
    _check_target(path, overwrite)
    _fio.save_params(_arrays(model, False), path)


# ======================================================================================================
# reading


def _read_member(z: zipfile.ZipFile, name: str, limit: int, path: str) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise ValueError(f"{path}: not a .keras archive written by fastconv.keras (no {name})") from None
    if info.file_size > limit:
        raise ValueError(f"{path}: member {name} is {info.file_size} bytes, more than the limit of {limit}")
    with z.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path}: member {name} inflates beyond {limit} bytes")
    return data


def _json(data: bytes, what: str, path: str):
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {what} is not valid JSON ({type(exc).__name__}: {exc})") from None


def _load_npz_member(z, path, expected: dict, optional) -> dict:
    """The weights member, extracted (size-checked) to a temporary file, read by fastconv.io.load_params."""
    try:
        info = z.getinfo(_WEIGHTS)
    except KeyError:
        raise ValueError(f"{path}: not a .keras archive written by fastconv.keras (no {_WEIGHTS})") from None
    limit = _fio.MAX_PARAM_BYTES
    if info.file_size > limit:
        raise ValueError(f"{path}: {_WEIGHTS} is {info.file_size} bytes, more than the limit of {limit}")
    with tempfile.TemporaryDirectory() as d:
        tmp = os.path.join(d, "weights.npz")
        with z.open(info) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        if os.path.getsize(tmp) > limit:
            raise ValueError(f"{path}: {_WEIGHTS} inflates beyond {limit} bytes")
        return _fio.load_params(tmp, expected=expected, optional=optional)


def _expected(model) -> dict:
    return {k: v.shape for k, v in zip(_weight_keys(model), model.weights)}


def _set_from(model, arrays: dict) -> None:
    model.set_weights([arrays[k] for k in _weight_keys(model)])


def _open(path):
    try:
        return zipfile.ZipFile(path, "r")
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not a .keras file (not a zip archive)") from None


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Read a model written by :func:`save_model` (see the module docstring)."""
    path = os.fspath(filepath)
    if not path.endswith(".keras"):
        raise ValueError(
            f"File format not supported: filepath={path}. fastconv.keras reads `.keras` files "
            "written by model.save()."
        )
    if not os.path.exists(path):
        raise ValueError(
            f"File not found: filepath={path}. Please ensure the file is an accessible `.keras` zip file."
        )
    with _open(path) as z:
        config = _json(_read_member(z, _CONFIG, _MAX_JSON, path), _CONFIG, path)
        if not isinstance(config, dict):
            raise ValueError(f"{path}: {_CONFIG} is not a model config")
        model = deserialize_layer(
            {"class_name": config.get("class_name"), "config": config.get("config")}, custom_objects
        )
        if not getattr(model, "built", False):
            raise ValueError(f"{path}: the saved model has no input shape")
        cc = config.get("compile_config") if compile else None
        if cc:
            model.compile(
                optimizer=_optimizers.get(cc["optimizer"]),
                loss=None if cc.get("loss") is None else _losses.get(cc["loss"]),
                metrics=cc.get("metrics") or None,
            )
        expected = _expected(model)
        # the optimizer's arrays are not known before they are read: the shapes are checked here instead
        arrays = _load_npz_member(z, path, None, ())
        missing = [k for k in expected if k not in arrays]
        if missing:
            raise ValueError(f"{path}: the weights do not fit the saved architecture: missing {missing[:5]}")
        for k, shape in expected.items():
            if tuple(arrays[k].shape) != tuple(shape):
                raise ValueError(
                    f"{path}: weight {k} has shape {arrays[k].shape}, the architecture needs {shape}"
                )
        _set_from(model, arrays)
        if cc:
            state = {k[len("optimizer.") :]: a for k, a in arrays.items() if k.startswith("optimizer.")}
            model.optimizer._load_state_arrays(
                {k.replace(".", "/", 1) if k != "iterations" else k: a for k, a in state.items()}
            )
    return model


def load_weights(model, filepath, skip_mismatch=False):
    """Set ``model``'s weights from a ``.weights.npz`` (``save_weights``) or a ``.keras`` file."""
    if skip_mismatch:
        raise NotImplementedError("load_weights(skip_mismatch=True) is not supported")
    path = os.fspath(filepath)
    expected = _expected(model)
    if path.endswith(".keras"):
        with _open(path) as z:
            arrays = _load_npz_member(z, path, None, ())
        missing = [k for k in expected if k not in arrays]
        if missing:
            raise ValueError(f"{path}: the weights do not fit this model: missing {missing[:5]}")
        for k, shape in expected.items():
            if tuple(arrays[k].shape) != tuple(shape):
                raise ValueError(f"{path}: weight {k} has shape {arrays[k].shape}, this model needs {shape}")
    elif path.endswith(".weights.npz"):
        arrays = _fio.load_params(path, expected=expected)
    else:
        raise ValueError(
            f"File format not supported: filepath={path}. fastconv.keras loads `.weights.npz` and "
            "`.keras` files."
        )
    _set_from(model, arrays)
